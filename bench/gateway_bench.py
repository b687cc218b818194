#!/usr/bin/env python3
"""ecgq-gateway's figures for docs/gateway.md, all against one cluster started here (broker with
the result cache off, so every job really runs; one worker; the gateway):
  1. /predict of a 10 s 12-lead record (data/ecg/HR06000, Challenge .hea + .mat) through the
     gateway vs the client library path of `ecgq submit` (bench_gateway, alternating, same run),
     and `ecgq submit` of the same record N times (mean per record, process start included);
  2. /health requests/s with 64 keep-alive clients (wrk -t2 -c64 -d10s);
  3. /health latency while 1,000 slow uploads trickle in (bench_slow_clients).
Usage: bench/gateway_bench.py [--build build] [--checkpoint data/models/demo-random-weights-tiny.pt]
                              [-n 200]"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(port, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if json.load(r).get("model_loaded"):
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("the gateway never became ready")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "data/models/demo-random-weights-tiny.pt"))
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--threads", default="0", help="worker threads (0 = every core)")
    args = ap.parse_args()
    b = os.path.join(args.build, "bin")
    bport, gport = free_port(), free_port()
    endpoint = f"tcp://127.0.0.1:{bport}"
    procs = [subprocess.Popen([f"{b}/ecgq-broker", "--bind", endpoint, "--result-cache-entries", "0"],
                              stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen([f"{b}/ecgq-worker", "serve", "--broker", endpoint, "--checkpoint",
                                   args.checkpoint, "--threads", args.threads, "--idle-timeout", "1h"],
                                  stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen([f"{b}/ecgq-gateway", "--broker", endpoint, "--bind",
                                   f"127.0.0.1:{gport}", "--log-level", "warn"], stderr=subprocess.DEVNULL))
    try:
        wait_health(gport)
        rec = [os.path.join(ROOT, "data/ecg/HR06000.hea"), os.path.join(ROOT, "data/ecg/HR06000.mat")]
        lat = json.loads(subprocess.run([f"{b}/bench_gateway", endpoint, str(gport), str(args.n)] + rec,
                                        capture_output=True, text=True, check=True).stdout)
        t0 = time.time()
        subprocess.run([f"{b}/ecgq", "--broker", endpoint, "submit", "--window", "1"] + [rec[0]] * args.n,
                       capture_output=True, check=True)
        cli_mean = (time.time() - t0) * 1000 / args.n
        wrk = subprocess.run(["wrk", "-t2", "-c64", "-d10s", f"http://127.0.0.1:{gport}/health"],
                             capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
        slow = json.loads(subprocess.run([f"{b}/bench_slow_clients", "127.0.0.1", str(gport), "1000", "10",
                                          "/predict", "Content-Type: application/json"],
                                         capture_output=True, text=True, check=True).stdout)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()
    print(f"checkpoint: {os.path.basename(args.checkpoint)}, n = {args.n}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| measure | gateway | ecgq submit's path | overhead |")
    print("|---|---|---|---|")
    print(f"| /predict 10 s ECG, p50 ms | {lat['gateway_p50_ms']:.2f} | {lat['client_p50_ms']:.2f} | "
          f"{lat['p50_overhead_pct']:+.1f}% |")
    print(f"| /predict 10 s ECG, p90 ms | {lat['gateway_p90_ms']:.2f} | {lat['client_p90_ms']:.2f} | |")
    print(f"| of which the worker's infer_ms, p50 | {lat['gateway_infer_p50_ms']:.2f} | "
          f"{lat['client_infer_p50_ms']:.2f} | |")
    print(f"| of which broker receipt to result (total_ms), p50 | {lat['gateway_total_p50_ms']:.2f} | "
          f"{lat['client_total_p50_ms']:.2f} | |")
    print(f"| `ecgq submit --window 1` of the record x{args.n}, mean ms per record (process start "
          f"included) | | {cli_mean:.2f} | |")
    print(f"| /health req/s, wrk -t2 -c64 -d10s | {rps:,.0f} | | |")
    print(f"| /health under 1,000 slow uploads, p50 / p99 / max ms ({slow['probes']} probes, "
          f"{slow['failures']} failed) | {slow['p50_ms']:.2f} / {slow['p99_ms']:.2f} / "
          f"{slow['max_ms']:.2f} | | |")


if __name__ == "__main__":
    main()
