#!/usr/bin/python3
"""Score every ECG under a directory with ECG-FM and keep what a data scientist wants next:
a table of probabilities (one row per record) and the embeddings as one array.

    PYTHONPATH=python /usr/bin/python3 python/examples/score_directory.py data/ecg \\
        --broker tcp://127.0.0.1:5555 --out scores

Writes scores.csv (path, then one column per label) and scores_embeddings.npy ([records, E],
rows in the CSV's order). Records that fail are listed on stderr with their error code.
"""
import argparse
import csv
import os
import sys

import numpy as np

import ecgq


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory")
    ap.add_argument("--broker", default=os.environ.get("ECGQ_BROKER", "tcp://127.0.0.1:5555"))
    ap.add_argument("--out", default="scores")
    a = ap.parse_args()
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(a.directory) for f in files
                   if f.endswith((".hea", ".csv", ".npy")))
    rows, embeddings, labels = [], [], None
    with ecgq.Client(a.broker) as client:
        # Results come in input order; at most 64 jobs are in flight at once.
        for path, result in zip(paths, client.map(paths, ordered=True, return_exceptions=True,
                                                   outputs=["probs", "embedding"])):
            if isinstance(result, ecgq.EcgqError):
                print(f"{path}: {result.code}: {result.message}", file=sys.stderr)
                continue
            labels = labels or result.labels
            rows.append([path] + [f"{p:.6f}" for p in result.probs])
            embeddings.append(result.embedding)
    with open(a.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path"] + (labels or []))
        w.writerows(rows)
    if embeddings:
        np.save(a.out + "_embeddings.npy", np.stack(embeddings))
    print(f"{len(rows)} of {len(paths)} records scored: {a.out}.csv", file=sys.stderr)


if __name__ == "__main__":
    main()
