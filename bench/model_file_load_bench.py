#!/usr/bin/python3
"""The packed model file against its checkpoint and eager PyTorch, by hand (docs/performance.md,
"Threads and the model file"); prints one JSON line per run, no doc block.

Usage: /usr/bin/python3 bench/model_file_load_bench.py --build BUILD --checkpoint FULL.pt
           --export FULL-bf16.ecgq [--input ../shared/ecgfm/input.npy] [--workdir DIR]
           [--rounds 3] [--part infer|rss|both]

Interleaved rounds, `OMP_WAIT_POLICY=PASSIVE`, each run's wall time and the CPU seconds (user +
sys) of its process, with the load average:
  infer  whole-process `ecgq-worker infer` of 8 segments (input tiled 4 times): the bf16 export
         packed, the export on the ATen path (ECGQ_PACKED_WEIGHTS=0), FULL.pt at bf16, and
         `scripts/ecgfm_reference.py --cold` on FULL.pt; then `bench_model` at 2 segments,
         2 threads, on the export (packed, ATen path) and FULL.pt.
  rss    `bench_model` at 2 segments, 1 thread: warm RSS after the forward pass and the load's
         peak, for the export and FULL.pt with huge pages off and on (ECGQ_HUGE_PAGES) and the
         export on the ATen path.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(name, argv, env):
    """Runs argv; returns (and prints) its figures."""
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **env))
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    out = p.stdout + p.stderr
    rec = {"name": name, "wall": round(wall, 3), "rc": p.returncode,
           "cpu": round(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, 3),
           "loadavg": os.getloadavg()[0]}
    m = re.search(r"load ([0-9.]+) ms, infer ([0-9.]+) ms", out)  # ecgq-worker infer
    if m:
        rec.update(load_ms=float(m.group(1)), infer_ms=float(m.group(2)))
    m = re.search(r"import_s=\S+ load_s=([0-9.]+) forward_s=([0-9.]+)", out)  # eager --cold
    if m:
        rec.update(load_ms=1000 * float(m.group(1)), infer_ms=1000 * float(m.group(2)))
    for phase in ("load", "forward"):  # bench_model
        m = re.search(rf"phase={phase} (.*)", out)
        if m:
            rec.update({f"{phase}.{k}": float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)",
                                                                        m.group(1))})
    if p.returncode:
        rec["error"] = out[-400:]
    print(json.dumps(rec), flush=True)
    return rec


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--export", required=True, help="the bf16 export of --checkpoint")
    ap.add_argument("--input", default=os.path.join(SOURCE, "..", "shared", "ecgfm", "input.npy"))
    ap.add_argument("--workdir", default="/tmp/model_file_load_bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--part", choices=["infer", "rss", "both"], default="both")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    x8 = os.path.join(args.workdir, "X8.npy")
    np.save(x8, np.tile(np.load(args.input), (4, 1, 1)))
    worker, bench = (os.path.join(args.build, "bin", b) for b in ("ecgq-worker", "bench_model"))
    out = os.path.join(args.workdir, "out")
    passive = {"OMP_WAIT_POLICY": "PASSIVE"}

    def infer(ckpt, *extra):
        return [worker, "infer", "--checkpoint", ckpt, "--input", x8, "--out", out, *extra]

    def bench_model(ckpt, threads):
        return [bench, "--checkpoint", ckpt, "--input", args.input, "--threads", str(threads),
                "--reps", "5", "--precision", "bf16", "--batches", "2", "--no-unload"]

    eager = ["/usr/bin/python3", os.path.join(SOURCE, "scripts", "ecgfm_reference.py"),
             "--checkpoint", args.checkpoint, "--input", x8, "--out", out + "_eager",
             "--threads", "2", "--cold"]
    subprocess.run(["cat", args.export, args.checkpoint], stdout=subprocess.DEVNULL)  # page cache
    for r in range(args.rounds):
        print(f"# round {r + 1} loadavg {open('/proc/loadavg').read().strip()}", flush=True)
        if args.part in ("infer", "both"):
            two = dict(passive, OMP_NUM_THREADS="2")
            run("infer export packed", infer(args.export), passive)
            run("infer export aten", infer(args.export), dict(passive, ECGQ_PACKED_WEIGHTS="0"))
            run("infer checkpoint bf16", infer(args.checkpoint, "--precision", "bf16"), passive)
            run("eager --cold", eager, passive)
            run("bench export packed", bench_model(args.export, 2), two)
            run("bench export aten", bench_model(args.export, 2), dict(two, ECGQ_PACKED_WEIGHTS="0"))
            run("bench checkpoint", bench_model(args.checkpoint, 2), two)
        if args.part in ("rss", "both"):
            one = dict(passive, OMP_NUM_THREADS="1")
            for pages in ("0", "1"):
                run(f"rss export huge_pages={pages}", bench_model(args.export, 1),
                    dict(one, ECGQ_HUGE_PAGES=pages))
                run(f"rss checkpoint huge_pages={pages}", bench_model(args.checkpoint, 1),
                    dict(one, ECGQ_HUGE_PAGES=pages))
            run("rss export aten huge_pages=0", bench_model(args.export, 1),
                dict(one, ECGQ_HUGE_PAGES="0", ECGQ_PACKED_WEIGHTS="0"))
    print(f"# end loadavg {open('/proc/loadavg').read().strip()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
