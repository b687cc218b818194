#!/usr/bin/python3
"""Hostile bodies against the real broker (issue 12, "Bounded under hostile input").

For each case a fresh ecgq-broker is started on 127.0.0.1; a probe client sends mmi.service
requests back to back the whole time and records each round trip, while a second client sends
the hostile body once. Reported per case: the broker's peak RSS (VmHWM from /proc/PID/status,
after the body was answered), the longest probe round trip while the body was in flight (an
upper bound on the longest loop pause; on a loaded machine it includes time the broker was not
scheduled), the broker's CPU time from sending the body to its answer (its work for the body plus
the probes answered meanwhile; loop_cpu_ms is its main thread's share), and the broker's answer.

    /usr/bin/python3 bench/hostile_bench.py --build BUILD [--json FILE]

Cases: `nils` (100 MiB map holding an array of 100 Mi nils), `deep` (100 MiB of nested one-element
arrays), `meta` (a valid job with 16 MiB of meta: 4096 keys of 4 KB strings), `meta_values` (16 MiB
of meta as 960k short strings in 16k arrays), `valid` (a valid 100 MiB f32 job,
result cache on: copy plus content hash), `valid_nocache` (the same, result cache off).
Build first: ninja -C BUILD ecgq-broker. About 30 s.
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import msgpack  # noqa: E402
import zmq

MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def cpu_ms(pid, thread=None):
    """User + system CPU time of a process (or one of its threads) so far, in ms; less
    sensitive to machine load than wall time. The broker's loop is its main thread (tid = pid);
    libzmq's I/O thread, which reads the bytes off the socket, is another."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def job(samples_bytes, meta=None, ident="hostile"):
    n = samples_bytes // 4
    body = {"v": 1, "id": ident, "fs": 500.0, "leads": ["I"],
            "ecg": {"dtype": "f32", "shape": [1, n], "data": b"\0" * (4 * n)}}
    if meta is not None:
        body["meta"] = meta
    return msgpack.packb(body, use_bin_type=True)


def nils(total):
    n = total - 16
    return b"\x81\xa4meta\xdd" + struct.pack(">I", n) + b"\xc0" * n


def deep(total):
    return b"\x91" * (total - 1) + b"\xc0"


CASES = {
    "nils": lambda: nils(100 * MIB),
    "deep": lambda: deep(100 * MIB),
    "meta": lambda: job(4096, meta={"k%05d" % i: "x" * 4080 for i in range(4096)}),
    "meta_values": lambda: job(4096, meta=[["m%013d" % i] * 60 for i in range(16_000)]),
    "valid": lambda: job(100 * MIB - 4096),
    "valid_nocache": lambda: job(100 * MIB - 4096),
}


class Probe(threading.Thread):
    """mmi.service round trips back to back; keeps the longest one seen while `armed`."""

    def __init__(self, ctx, endpoint):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.connect(endpoint)
        self.stop = False
        self.armed = False
        self.longest_ms = 0.0
        self.count = 0

    def run(self):
        while not self.stop:
            t0 = time.perf_counter()
            self.sock.send_multipart([b"MDPC02", b"\x01", b"mmi.service", b"ecg-fm"])
            if not self.sock.poll(30000):
                raise SystemExit("probe: no answer in 30 s")
            self.sock.recv_multipart()
            dt = (time.perf_counter() - t0) * 1000
            if self.armed:
                self.longest_ms = max(self.longest_ms, dt)
                self.count += 1


def run_case(build, name, body):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    args = [os.path.join(build, "bin", "ecgq-broker"), "--bind", f"tcp://127.0.0.1:{port}",
            "--log-level", "warn"]
    if name == "valid_nocache":
        args += ["--result-cache-entries", "0"]
    log = tempfile.TemporaryFile()
    broker = subprocess.Popen(args, stdout=log, stderr=log)
    ctx = zmq.Context()
    try:
        probe = Probe(ctx, endpoint)
        probe.start()
        probe.armed = True
        deadline = time.time() + 10
        while probe.count < 20:  # the broker answers: its loop is running
            if time.time() > deadline:
                raise SystemExit("broker did not answer mmi.service in 10 s")
            time.sleep(0.01)
        probe.longest_ms, probe.count = 0.0, 0
        base_kb = vm_hwm_kb(broker.pid)
        probe_cpu = probe.count  # probes cost CPU too: subtract their average below
        cpu0 = cpu_ms(broker.pid)
        loop0 = cpu_ms(broker.pid, broker.pid)
        t_probe0 = time.perf_counter()
        client = ctx.socket(zmq.DEALER)
        client.connect(endpoint)
        t0 = time.perf_counter()
        client.send_multipart([b"MDPC02", b"\x01", b"ecg-fm", body], copy=False)
        # A valid job with no worker stays queued: its answer is an mmi.job-less wait, so the
        # probe's view of its arrival is what counts; hostile ones are answered at once.
        answer = "queued"
        if client.poll(5000):
            frames = client.recv_multipart()
            reply = msgpack.unpackb(frames[3], raw=False)
            answer = reply.get("error", {}).get("code", "ok")
            if frames[1] == b"\x02":
                answer = "accepted (PARTIAL)"
            elif "error" in reply:
                answer += ": " + reply["error"].get("message", "")[:80]
        elapsed = (time.perf_counter() - t0) * 1000
        cpu_body = cpu_ms(broker.pid) - cpu0
        loop_body = cpu_ms(broker.pid, broker.pid) - loop0
        probes_during = probe.count - probe_cpu
        time.sleep(0.3)  # a few more probes after the body was handled
        probe.stop = True
        probe.join()
        return {"case": name, "body_mib": round(len(body) / MIB, 1), "answer": answer,
                "answer_ms": round(elapsed, 1), "longest_probe_ms": round(probe.longest_ms, 1),
                "probes": probe.count,
                "broker_cpu_ms": round(cpu_body, 1), "loop_cpu_ms": round(loop_body, 1), "probes_meanwhile": probes_during, "vmhwm_mb_before": round(base_kb / 1024, 1),
                "vmhwm_mb": round(vm_hwm_kb(broker.pid) / 1024, 1)}
    finally:
        broker.terminate()
        broker.wait()
        ctx.destroy(linger=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--json")
    ap.add_argument("--only", default=",".join(CASES))
    a = ap.parse_args()
    rows = []
    for name in a.only.split(","):
        body = CASES[name]()
        rows.append(run_case(a.build, name, body))
        del body
        print(json.dumps(rows[-1]), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
