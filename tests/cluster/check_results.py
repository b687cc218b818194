#!/usr/bin/env python3
"""Checks a producer's JSONL output against the records it was given (scripts/test-cluster).

  check_results.py RESULTS.jsonl EXPECTED_COUNT [--strip PREFIX] [--records DIR] [--sha256 HEX]

Every record answered exactly once: no path twice, no job id twice, EXPECTED_COUNT distinct
paths, and (with --records) exactly the records under DIR (the .hea files, as paths relative to
DIR after --strip). Prints one line: `ok=N error=N codes=code:N,... workers=id:N,... twice=N
missing=N unexpected=N attempts2=N` and exits 1 when a record is missing, unexpected or
answered twice, or an ok result names another model than --sha256.
"""
import argparse
import collections
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("expected", type=int)
    ap.add_argument("--strip", default="")
    ap.add_argument("--records")
    ap.add_argument("--sha256")
    a = ap.parse_args()
    seen = collections.Counter()
    ids = collections.Counter()
    codes = collections.Counter()
    workers = collections.Counter()
    ok = err = retried = wrong_model = bad_lines = 0
    with open(a.results, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                bad_lines += 1
                continue
            path = r.get("path", "")
            if a.strip and path.startswith(a.strip):
                path = path[len(a.strip):]
            seen[path] += 1
            if r.get("id"):
                ids[r["id"]] += 1
            if r.get("status") == "ok":
                ok += 1
                workers[r.get("worker", "?")] += 1
                if (r.get("attempts") or 0) > 1:
                    retried += 1
                if a.sha256 and (r.get("model") or {}).get("sha256") != a.sha256:
                    wrong_model += 1
            else:
                err += 1
                codes[(r.get("error") or {}).get("code", "?")] += 1
    twice = sum(1 for n in seen.values() if n > 1) + sum(1 for n in ids.values() if n > 1)
    missing = unexpected = 0
    if a.records:
        want = set()
        for d, _, files in os.walk(a.records):
            for name in files:
                if name.endswith(".hea"):
                    want.add(os.path.relpath(os.path.join(d, name), a.records))
        got = set(seen)
        # The producer names a WFDB record by its .hea path or by the record path without it.
        got_norm = {p if p.endswith(".hea") else p + ".hea" for p in got}
        missing = len(want - got_norm)
        unexpected = len(got_norm - want)
    else:
        missing = max(0, a.expected - len(seen))
    if len(seen) != a.expected and not a.records:
        missing = max(missing, a.expected - len(seen))
    fmt = lambda c: ",".join(f"{k}:{v}" for k, v in sorted(c.items())) or "-"
    print(f"ok={ok} error={err} codes={fmt(codes)} workers={fmt(workers)} twice={twice} "
          f"missing={missing} unexpected={unexpected} attempts2={retried} "
          f"wrong_model={wrong_model} bad_lines={bad_lines}")
    bad = twice or missing or unexpected or wrong_model or bad_lines or len(seen) != a.expected
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
