"""A real ecgq cluster on 127.0.0.1 for the end-to-end benchmarks, and a tiny MDP client.

Used by bench/e2e_bench.py: starts ecgq-broker and ecgq-worker as processes (logs in a work
directory), speaks MDP/Client 0.2 over a ZeroMQ DEALER (docs/protocol.md sections 1 and 4), and
builds distinct synthetic 12-lead ECG job bodies.
"""

import os
import re
import signal
import socket
import subprocess
import time

import msgpack
import numpy as np
import zmq

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
FS = 500
SEGMENT_SAMPLES = 2500  # one 5 s model segment at 500 Hz


class BenchError(RuntimeError):
    """A benchmark step that cannot go on (the message says which and why)."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_ecg(seed, seconds):
    """A distinct ECG-like record [12, seconds*500] in mV: beats, baseline wander and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    rate = rng.uniform(55, 95) / 60.0
    phase = (t * rate + rng.uniform()) % 1.0
    qrs = np.exp(-((phase - 0.3) ** 2) / (2 * 0.012**2))
    p = 0.15 * np.exp(-((phase - 0.15) ** 2) / (2 * 0.03**2))
    tw = 0.3 * np.exp(-((phase - 0.6) ** 2) / (2 * 0.06**2))
    gains = rng.uniform(-1.5, 1.5, size=(12, 3))
    x = gains[:, :1] * qrs + gains[:, 1:2] * p + gains[:, 2:3] * tw
    x += 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6))
    x += rng.normal(0, 0.02, size=x.shape)
    return x.astype(np.float32)


def job_body(job_id, ecg):
    return msgpack.packb(
        {"v": 1, "id": job_id,
         "ecg": {"dtype": "f32", "shape": list(ecg.shape), "data": ecg.tobytes()},
         "fs": float(FS), "leads": LEADS}, use_bin_type=True)


class MdpClient:
    """One DEALER speaking MDP/Client 0.2; replies are matched by job id (pipelining allowed)."""

    def __init__(self, endpoint, service="ecg-fm"):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.service = service.encode()

    def close(self):
        self.sock.close(0)

    def send(self, body, service=None):
        self.sock.send_multipart([b"MDPC02", b"\x01", service or self.service, body])

    def recv_final(self, timeout_s):
        """The next FINAL as (service, body, receive time); PARTIALs are skipped."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                raise BenchError(f"no FINAL from the broker within {timeout_s:.0f} s")
            frames = self.sock.recv_multipart()
            now = time.perf_counter()
            if len(frames) >= 4 and frames[1] == b"\x03":
                return frames[2].decode(), frames[3], now

    def request(self, body, timeout_s):
        """Sends one job and waits for its FINAL: (result dict, client round trip in ms)."""
        t0 = time.perf_counter()
        self.send(body)
        _, reply, t1 = self.recv_final(timeout_s)
        return msgpack.unpackb(reply, raw=False), (t1 - t0) * 1000.0

    def status(self, timeout_s=10):
        self.send(b"", service=b"mmi.status")
        while True:
            service, body, _ = self.recv_final(timeout_s)
            if service == "mmi.status":
                return msgpack.unpackb(body, raw=False)


def help_text(argv):
    r = subprocess.run(argv + ["--help"], capture_output=True, text=True)
    return r.stdout + r.stderr


class Cluster:
    """ecgq-broker + N ecgq-worker processes on 127.0.0.1; stop() ends exactly those processes."""

    def __init__(self, bindir, logdir, name, service="ecg-fm"):
        self.bindir, self.logdir, self.name, self.service = bindir, logdir, name, service
        self.procs = []
        self.worker_logs = []
        os.makedirs(logdir, exist_ok=True)
        self.endpoint = None
        self.client = None

    def _spawn(self, argv, env, tag):
        path = os.path.join(self.logdir, f"{self.name}-{tag}.log")
        full_env = dict(os.environ)
        full_env.pop("OMP_WAIT_POLICY", None)  # only what the bench sets
        full_env.update(env or {})
        f = open(path, "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=full_env,
                             start_new_session=True)
        self.procs.append((p, f, path, tag))
        return path

    def start_broker(self, extra=None):
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        argv = [os.path.join(self.bindir, "ecgq-broker"), "--bind", self.endpoint,
                "--log-level", "warn"] + (extra or [])
        self._spawn(argv, {}, "broker")
        self.client = MdpClient(self.endpoint, self.service)

    def add_worker(self, flags, threads, tag, wait_policy="default"):
        """flags: {"--checkpoint": ..., ...}; threads sets the OpenMP/OpenBLAS environment and
        wait_policy OMP_WAIT_POLICY ("default" = leave it unset)."""
        argv = [os.path.join(self.bindir, "ecgq-worker"), "serve", "--broker", self.endpoint,
                "--service", self.service, "--worker-id", f"{self.name}-{tag}",
                "--log-level", "info", "--threads", str(threads)]
        for k, v in flags.items():
            argv += [k, str(v)]
        env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
               "MKL_NUM_THREADS": str(threads)}
        if wait_policy != "default":
            env["OMP_WAIT_POLICY"] = wait_policy
        self.worker_logs.append(self._spawn(argv, env, tag))

    def check_alive(self):
        for p, _, path, tag in self.procs:
            if p.poll() is not None:
                tail = open(path).read()[-2000:]
                raise BenchError(f"{tag} exited with status {p.returncode}; log {path}:\n{tail}")

    def workers(self):
        st = self.client.status()
        return st.get("services", {}).get(self.service, {}).get("workers", [])

    def wait_workers(self, n, states, timeout_s=300):
        """Polls mmi.status until n workers are in one of `states` (observable state, no sleeps
        as synchronisation: the poll interval only bounds the polling rate)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            ws = self.workers()
            if sum(1 for w in ws if w.get("state") in states) >= n:
                return ws
            if time.monotonic() > deadline:
                raise BenchError(f"{n} worker(s) not in {states} after {timeout_s} s: "
                                 f"{[(w.get('id'), w.get('state')) for w in ws]}")
            time.sleep(0.05)

    def last_warm(self, log_index=0):
        """key=value fields of the worker's last event=model_warm log line."""
        text = open(self.worker_logs[log_index]).read()
        lines = [l for l in text.splitlines() if "event=model_warm" in l]
        return dict(re.findall(r"(\w+)=(\S+)", lines[-1])) if lines else {}

    def stop(self):
        if self.client:
            self.client.close()
            self.client = None
        for p, _, _, _ in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, f, _, _ in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            f.close()
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
