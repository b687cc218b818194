#!/usr/bin/python3
"""The trimmed libtorch_cpu (ECGQ_TRIM_LIBTORCH) against the system one, same binaries.

Usage: /usr/bin/python3 bench/libtorch_trim_bench.py --build BUILD --checkpoint FULL.pt
           [--export FULL-bf16.ecgq] [--input ../shared/ecgfm/input.npy] [--workdir DIR]
           [--pairs 20] [--rss-pairs 3] [--rounds 5] [--only start,rss,infer]

The "system" side runs the same program with LD_LIBRARY_PATH set to the system library's
directory, which the loader searches before the program's RUNPATH. Sides alternate (A B, B A, ...)
so that the machine's load hits both alike; the load average is printed. Prints:
  start   `ecgq-worker --version`: medians of wall, user+sys and max RSS over --pairs pairs
  rss     `bench_model` with 1 thread, bf16, on the export (or the checkpoint): median RSS of its
          phases (start, load, forward) over --rss-pairs pairs
  infer   whole-process `ecgq-worker infer` of 8 segments (input tiled to 8), default threads,
          fp32, bf16 and the export, and the eager script (scripts/ecgfm_reference.py --cold):
          best and median wall, best CPU, and the ratio of bests to the eager script's best
Nothing is written to the docs: docs/performance.md ("A trimmed LibTorch") quotes a run by hand.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"


def log(msg):
    print(f"libtorch_trim_bench: {msg}", file=sys.stderr, flush=True)


def system_dir(worker):
    """The directory of the system libtorch_cpu: where ldd finds it without the RUNPATH copy."""
    out = subprocess.run(["ldd", worker], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "libtorch.so" in line and "=>" in line:  # Debian's stub sits beside libtorch_cpu
            return os.path.dirname(os.path.realpath(line.split("=>")[1].split()[0]))
    raise SystemExit(f"no libtorch.so in `ldd {worker}`")


def run_rusage(argv, env):
    """Runs argv; returns (stdout, wall s, user+sys s, max RSS MiB) from wait4's rusage."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(argv)}")
    return out, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def sides(sysdir):
    trim = dict(os.environ)
    trim.pop("LD_LIBRARY_PATH", None)
    return {"trimmed": trim, "system": dict(trim, LD_LIBRARY_PATH=sysdir)}


def alternate(i):
    return ("trimmed", "system") if i % 2 == 0 else ("system", "trimmed")


def start(a, envs):
    res = {k: [] for k in envs}
    loads = []
    for i in range(a.pairs):
        loads.append(os.getloadavg()[0])
        for side in alternate(i):
            res[side].append(run_rusage([a.worker, "--version"], envs[side])[1:])
    print(f"\nstart: `ecgq-worker --version`, {a.pairs} pairs, load average "
          f"{min(loads):.2f}-{max(loads):.2f}")
    print("| side | wall s | user+sys s | max RSS MiB |\n|---|---:|---:|---:|")
    for side, v in res.items():
        med = [statistics.median(x[k] for x in v) for k in range(3)]
        print(f"| {side} | {med[0]:.3f} | {med[1]:.3f} | {med[2]:.1f} |")


def rss(a, envs):
    model = a.export or a.checkpoint
    argv = [os.path.join(a.build, "bin", "bench_model"), "--checkpoint", model, "--input", a.input,
            "--threads", "1", "--reps", "5", "--precision", "bf16", "--batches", "2",
            "--no-unload"]
    one = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = {k: [] for k in envs}
    loads = []
    for i in range(a.rss_pairs):
        loads.append(os.getloadavg()[0])
        for side in alternate(i):
            out = run_rusage(argv, dict(envs[side], **one))[0]
            phases = {}
            for line in out.splitlines():
                kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
                if "phase" in kv and "rss_kb" in kv:
                    phases[kv["phase"]] = int(kv["rss_kb"]) / 1024
            res[side].append(phases)
    print(f"\nrss: bench_model bf16, 1 thread, {os.path.basename(model)}, {a.rss_pairs} pairs, load "
          f"average {min(loads):.2f}-{max(loads):.2f}; command: {' '.join(argv)}")
    print("| side | start MiB | load MiB | forward MiB |\n|---|---:|---:|---:|")
    for side, v in res.items():
        med = {k: statistics.median(x[k] for x in v) for k in ("start", "load", "forward")}
        print(f"| {side} | {med['start']:.1f} | {med['load']:.1f} | {med['forward']:.1f} |")


def infer(a, envs):
    x8 = os.path.join(a.workdir, "X8.npy")
    subprocess.run([PY, "-c", "import numpy as np,sys; x=np.load(sys.argv[1]); "
                    "np.save(sys.argv[2], np.tile(x, (8 // x.shape[0], 1, 1)))", a.input, x8],
                   check=True)
    w = a.worker
    cases = {"fp32": [w, "infer", "--checkpoint", a.checkpoint, "--input", x8, "--out"],
             "bf16": [w, "infer", "--checkpoint", a.checkpoint, "--input", x8, "--precision",
                      "bf16", "--out"]}
    if a.export:
        cases["export"] = [w, "infer", "--checkpoint", a.export, "--input", x8, "--out"]
    eager = [PY, os.path.join(ROOT, "scripts/ecgfm_reference.py"), "--checkpoint", a.checkpoint,
             "--input", x8, "--threads", "2", "--cold", "--out"]
    for f in {a.checkpoint, a.export} - {None}:
        subprocess.run(["cat", f], stdout=subprocess.DEVNULL, check=True)  # page cache warm
    res, loads = {}, []
    for i in range(a.rounds):
        loads.append(os.getloadavg()[0])
        for name, argv in cases.items():
            for side in alternate(i):
                out = os.path.join(a.workdir, f"out_{name}_{side}")
                res.setdefault((name, side), []).append(run_rusage(argv + [out], envs[side])[1:3])
        res.setdefault(("eager", "-"), []).append(
            run_rusage(eager + [os.path.join(a.workdir, "out_eager")], envs["trimmed"])[1:3])
        log(f"infer round {i + 1}/{a.rounds}, load average {loads[-1]:.2f}")
    best_eager = min(x[0] for x in res[("eager", "-")])
    print(f"\ninfer: 8 segments, default threads, {a.rounds} rounds, load average "
          f"{min(loads):.2f}-{max(loads):.2f}")
    print("| case | side | best wall s | median wall s | best CPU s | best / eager's best |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, side), v in res.items():
        walls = [x[0] for x in v]
        print(f"| {name} | {side} | {min(walls):.3f} | {statistics.median(walls):.3f} | "
              f"{min(x[1] for x in v):.3f} | {min(walls) / best_eager:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--checkpoint", required=True, help="full-size checkpoint (FULL.pt)")
    ap.add_argument("--export", help="its bf16 model file (ecgq-worker export)")
    ap.add_argument("--input", default=os.path.join(ROOT, "..", "shared", "ecgfm", "input.npy"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--rss-pairs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="start,rss,infer")
    a = ap.parse_args()
    a.worker = os.path.join(a.build, "bin", "ecgq-worker")
    a.workdir = a.workdir or f"/tmp/libtorch-trim-bench-{os.getpid()}"
    os.makedirs(a.workdir, exist_ok=True)
    envs = sides(system_dir(a.worker))
    for s in a.only.split(","):
        {"start": start, "rss": rss, "infer": infer}[s](a, envs)


if __name__ == "__main__":
    main()
