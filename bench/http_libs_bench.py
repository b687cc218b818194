#!/usr/bin/env python3
"""The HTTP library choice of docs/gateway.md, measured: for Boost.Beast (ecgq_gateway_http) and
cpp-httplib, /health requests/s with 64 keep-alive clients (wrk) and /health latency while 1,000
slow uploads trickle in (bench_slow_clients). Usage: bench/http_libs_bench.py [BUILD_DIR]"""
import json
import os
import re
import socket
import subprocess
import sys
import time

BIN = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(port, seconds=10):
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/health"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main():
    rows = []
    for lib in ("beast", "httplib"):
        port = free_port()
        server = subprocess.Popen([os.path.join(BIN, "bench_http_libs"), lib, str(port)],
                                  stdout=subprocess.PIPE, text=True)
        server.stdout.readline()
        try:
            rps = wrk(port)
            slow = json.loads(subprocess.run(
                [os.path.join(BIN, "bench_slow_clients"), "127.0.0.1", str(port), "1000", "8"],
                capture_output=True, text=True, check=True).stdout)
        finally:
            server.terminate()
            server.wait()
        rows.append((lib, rps, slow))
    print("| library | /health req/s (wrk -t2 -c64 -d10s) | /health under 1,000 slow uploads: "
          "p50 / p99 / max ms | probes failed |")
    print("|---|---|---|---|")
    for lib, rps, slow in rows:
        print(f"| {lib} | {rps:,.0f} | {slow['p50_ms']:.1f} / {slow['p99_ms']:.1f} / "
              f"{slow['max_ms']:.1f} | {slow['failures']} of {slow['failures'] + slow['probes']} |")


if __name__ == "__main__":
    main()
