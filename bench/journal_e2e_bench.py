#!/usr/bin/python3
"""End-to-end ECG-FM latency with the broker's journal off, on (journal_sync full) and on
(journal_sync normal), in the same run (issue 11: at most 5% on p50).

    /usr/bin/python3 bench/journal_e2e_bench.py --build BUILD --checkpoint FULL.pt
        [--jobs 15] [--rounds 3] [--threads 2] [--journal-dir DIR]

Three real clusters on 127.0.0.1 (ecgq-broker + one ecgq-worker each, result cache off), started
together and driven one job at a time: each round sends --jobs triples of distinct 10 s ECGs,
one job of a triple to each cluster in turn (the order rotating), so the three see the same
machine load. Latency is the client's round trip (send -> FINAL). Prints a Markdown block with
the command, the load average, p50/p90 per configuration, the p50 ratio to journal off, the
median over triples of (this job - the off job) and each round's p50 (the spread).
Needs: ninja -C BUILD ecgq-broker ecgq-worker.
"""
import argparse
import math
import os
import shlex
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_cluster import Cluster, job_body, synthetic_ecg  # noqa: E402

MODES = ("off", "full", "normal")


def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]  # nearest rank


def start(args, bindir, logdir, mode, journal_dir):
    c = Cluster(bindir, logdir, f"journal-{mode}")
    flags = ["--result-cache-entries", "0"]
    if mode != "off":
        flags += ["--journal", os.path.join(journal_dir, f"{mode}.db"), "--journal-sync", mode]
    c.start_broker(flags)
    c.add_worker({"--checkpoint": args.checkpoint, "--precision": "fp32", "--capacity": 1,
                  "--max-batch": 1, "--idle-timeout": "1h"}, args.threads, "w0")
    return c


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--checkpoint", required=True, help="the model the workers load")
    ap.add_argument("--jobs", type=int, default=15, help="timed jobs per configuration per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--journal-dir", help="where the journals go (default: a temporary directory)")
    args = ap.parse_args(argv)
    bindir = os.path.join(os.path.abspath(args.build), "bin")
    tmp = tempfile.TemporaryDirectory(prefix="journal-e2e-")
    journal_dir = args.journal_dir or tmp.name
    logdir = os.path.join(tmp.name, "logs")
    load_start = os.getloadavg()
    clusters = {m: start(args, bindir, logdir, m, journal_dir) for m in MODES}
    seed = 0
    try:
        for c in clusters.values():
            c.wait_workers(1, ("cold", "warming", "warm", "busy"), 300)
            for _ in range(2):  # loads the model, then one warm pass
                seed += 1
                r, _ = c.client.request(job_body(f"warm-{seed}", synthetic_ecg(seed, 10)), 600)
                if r.get("status") != "ok":
                    raise SystemExit(f"warm-up job failed: {r.get('error')}")
        lat = {m: [] for m in MODES}
        per_round = {m: [] for m in MODES}
        paired = {m: [] for m in MODES}  # this job's latency - the off job's of the same triple
        for rnd in range(args.rounds):
            this = {m: [] for m in MODES}
            for k in range(args.jobs):
                # One job per configuration in turn, the order rotating: the three see the same
                # load from moment to moment (a block per configuration did not, on a busy VM).
                order = MODES[k % 3:] + MODES[:k % 3]
                rtt = {}
                for m in order:
                    seed += 1
                    r, rtt[m] = clusters[m].client.request(
                        job_body(f"j-{seed}", synthetic_ecg(seed, 10)), 600)
                    if r.get("status") != "ok":
                        raise SystemExit(f"{m}: job failed: {r.get('error')}")
                for m in MODES:
                    this[m].append(rtt[m])
                    paired[m].append(rtt[m] - rtt["off"])
            for m in MODES:
                lat[m] += this[m]
                per_round[m].append(pct(this[m], 50))
            print(f"[journal_e2e] round {rnd + 1}: " +
                  ", ".join(f"{m} p50 {pct(this[m], 50):.1f} ms" for m in MODES),
                  file=sys.stderr, flush=True)
    finally:
        for c in clusters.values():
            c.stop()
    load_end = os.getloadavg()
    cmd = "/usr/bin/python3 bench/journal_e2e_bench.py --build BUILD --checkpoint " + \
        shlex.quote(os.path.basename(args.checkpoint)) + \
        f" --jobs {args.jobs} --rounds {args.rounds} --threads {args.threads}"
    off50 = pct(lat["off"], 50)
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"load average {load_start[0]:.1f} at the start and {load_end[0]:.1f} at the end. "
          f"Command: `{cmd}`\n")
    print("| journal | jobs | p50 ms | p90 ms | p50 vs off | median paired difference to off "
          "(ms) | p50 of each round (ms) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for m in MODES:
        p50 = pct(lat[m], 50)
        rounds = ", ".join(f"{v:.0f}" for v in per_round[m])
        name = "off" if m == "off" else f"on, journal_sync {m}"
        print(f"| {name} | {len(lat[m])} | {p50:.1f} | {pct(lat[m], 90):.1f} | "
              f"{100 * (p50 / off50 - 1):+.1f}% | {pct(paired[m], 50):+.1f} | {rounds} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
