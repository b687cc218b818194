#!/usr/bin/python3
"""The capacity planner against a real cluster (issue 19) and its simulation speed.

Starts ecgq-broker (result cache off) and one ecgq-worker on CHECKPOINT, calibrates a profile with
`ecgq plan --calibrate`, replays a Poisson trace against the cluster with BUILD/bin/bench_planner
and prints the real and predicted p50/p95 latency and cold starts, plus the time to simulate 24 h
at 1 job/s.

    /usr/bin/python3 bench/planner_bench.py --build BUILD [--checkpoint FILE] [--rate 1/s]
        [--duration 60s] [--idle-timeout 15m] [--json FILE]

Default checkpoint: the tiny demo model (data/models) (forward passes of a few ms, so transport
matters); give the full-size FULL.pt (scripts/make_full_checkpoint.py) for ECG-FM's own figures.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "data/models/demo-random-weights-tiny.pt"))
    ap.add_argument("--rate", default="1/s")
    ap.add_argument("--duration", default="60s")
    ap.add_argument("--idle-timeout", default="15m")
    ap.add_argument("--threads", default="0")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    bin_dir = os.path.join(a.build, "bin")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as tmp:
        broker = subprocess.Popen([os.path.join(bin_dir, "ecgq-broker"), "--bind", endpoint,
                                   "--result-cache-entries", "0", "--log-level", "warn"])
        worker = subprocess.Popen([os.path.join(bin_dir, "ecgq-worker"), "serve", "--broker", endpoint,
                                   "--checkpoint", a.checkpoint, "--idle-timeout", a.idle_timeout,
                                   "--threads", a.threads, "--log-level", "warn"])
        try:
            ecgq = [os.path.join(bin_dir, "ecgq"), "--broker", endpoint]
            deadline = time.time() + 300
            while subprocess.run(ecgq + ["--timeout", "2s", "status", "--check"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
                if time.time() > deadline:
                    raise SystemExit("the worker did not come up")
                time.sleep(0.5)
            profile = os.path.join(tmp, "profile.json")
            subprocess.run(ecgq + ["plan", "--calibrate", "--out", profile], check=True)
            print(open(profile).read(), file=sys.stderr)
            out = subprocess.run([os.path.join(bin_dir, "bench_planner"), "--broker", endpoint,
                                  "--profile", profile, "--rate", a.rate, "--duration", a.duration,
                                  "--idle-timeout", a.idle_timeout, "--json"],
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
        finally:
            worker.terminate()
            broker.terminate()
            worker.wait()
            broker.wait()
    sys.stdout.write(out)
    figures = [json.loads(l[len("json: "):]) for l in out.splitlines() if l.startswith("json: ")]
    if a.json and figures:
        with open(a.json, "w") as f:
            json.dump(figures[0], f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
