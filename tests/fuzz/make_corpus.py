#!/usr/bin/python3
"""Writes the committed seed corpora under tests/fuzz/corpus/<target>/ (run from anywhere).

Seeds are small valid inputs of each parser, so that libFuzzer starts from the structures the
parsers accept and mutates from there. Re-run after a format change; commit the result.
Usage: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import os
import shutil
import struct

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frames(*parts):
    return b"\xff\x00".join(parts)


def mdp_seeds():
    put("fuzz_mdp", "client_request", frames(b"MDPC02", b"\x01", b"ecg-fm", b"body"))
    put("fuzz_mdp", "client_final", frames(b"MDPC02", b"\x03", b"ecg-fm", b"result"))
    put("fuzz_mdp", "worker_ready", frames(b"MDPW02", b"\x01", b"ecg-fm", b"\x80"))
    put("fuzz_mdp", "worker_final", frames(b"MDPW02", b"\x04", b"client", b"", b"body"))
    put("fuzz_mdp", "worker_heartbeat", frames(b"MDPW02", b"\x05"))
    put("fuzz_mdp", "worker_disconnect", frames(b"MDPW02", b"\x06"))


def job(samples, **extra):
    body = {"v": 1, "id": "seed", "ecg": {"dtype": "f32", "shape": list(samples.shape),
                                         "data": samples.astype("<f4").tobytes()},
            "fs": 500.0, "leads": ["I", "II", "III", "aVR", "aVL", "aVF",
                                   "V1", "V2", "V3", "V4", "V5", "V6"][:samples.shape[0]]}
    body.update(extra)
    return msgpack.packb(body, use_bin_type=True)


def body_seeds():
    x = np.linspace(-1, 1, 12 * 16, dtype=np.float32).reshape(12, 16)
    put("fuzz_bodies", "job_min", job(x))
    put("fuzz_bodies", "job_full", job(x, gain=[1.0] * 12, baseline=0.0, units="uV",
                                       outputs=["probs", "embedding", "segments", "saliency"],
                                       deadline_ms=1000, meta={"k": [1, 2, None]}))
    i16 = {"v": 1, "ecg": {"dtype": "i16", "shape": [2, 4], "data": b"\x01\x00" * 8},
           "fs": 250, "leads": ["I", "II"], "gain": 200.0}
    put("fuzz_bodies", "job_i16", msgpack.packb(i16, use_bin_type=True))
    ok = {"v": 1, "id": "seed", "status": "ok", "labels": ["a", "b"],
          "probs": {"a": 0.25, "b": 0.75}, "embedding": [0.5, 0.25], "n_segments": 1,
          "model": {"kind": "finetuned", "name": "m", "sha256": "ab" * 32, "precision": "fp32"},
          "timings": {"queued_ms": 1.0, "total_ms": 2.0}, "cold_start": False, "attempts": 1}
    put("fuzz_bodies", "result_ok", msgpack.packb(ok, use_bin_type=True))
    err = {"v": 1, "id": "", "status": "error", "attempts": 0,
           "error": {"code": "bad_request", "message": "m", "field": "fs", "retry_after_ms": 5}}
    put("fuzz_bodies", "result_error", msgpack.packb(err, use_bin_type=True))
    put("fuzz_bodies", "progress", msgpack.packb({"v": 1, "id": "seed", "event": "queued",
                                                  "position": 3}, use_bin_type=True))


def extension_seeds():
    model = {"kind": "ecgfm", "name": "m.pt", "sha256": "ab" * 32, "precision": "fp32"}
    put("fuzz_bodies", "ready", msgpack.packb(
        {"v": 1, "capacity": 2, "state": "asleep", "worker_id": "w1", "model": model,
         "pid": 42, "host": "h"}, use_bin_type=True))
    put("fuzz_bodies", "worker_status", msgpack.packb(
        {"state": "warm", "rss_bytes": 4096, "jobs_done": 3, "inflight": 1, "capacity": 2,
         "model": model}, use_bin_type=True))
    put("fuzz_bodies", "keep_warm", msgpack.packb({"keep_warm": True}, use_bin_type=True))
    put("fuzz_bodies", "cancel", msgpack.packb({"ids": ["a", "b"], "all": False},
                                               use_bin_type=True))
    worker = {"id": "w1", "state": "busy", "capacity": 2, "in_flight": 1, "jobs_done": 3,
              "last_heartbeat_ms": 10, "rss_bytes": -1, "keep_warm": True, "model": model,
              "pid": 42, "host": "h"}
    put("fuzz_bodies", "status", msgpack.packb(
        {"v": 1, "uptime_ms": 5, "shutting_down": False,
         "services": {"ecg-fm": {"ecgq": True, "queued": 1, "in_flight": 1, "clients_waiting": 1,
                                 "service_ms": 1.5, "workers": [worker]}},
         "counters": {"received": 1, "errors": {"queue_full": 1}},
         "result_cache": {"enabled": True, "hit_rate": 0.5}}, use_bin_type=True))


def npy_seeds():
    for name, arr in [("f32", np.zeros((12, 8), "<f4")), ("f64", np.ones((2, 3), "<f8")),
                      ("i16", np.arange(6, dtype="<i2").reshape(2, 3))]:
        path = os.path.join(CORPUS, "_tmp.npy")
        np.save(path, arr)
        with open(path, "rb") as f:
            data = f.read()
        os.remove(path)
        put("fuzz_npy", name, data)
        put("fuzz_records", "npy_" + name, b"\x03" + data)


def record_seeds():
    with open(os.path.join(ROOT, "data", "ecg", "1.hea"), "rb") as f:
        hea = f.read()
    put("fuzz_wfdb_header", "ludb_1", hea)
    put("fuzz_wfdb_header", "challenge", b"HR0 12 500 5000 05-May-2020 09:49:17\n" + b"".join(
        b"HR0.mat 16+24 1000/mv 16 0 -15 -1348 0 %s\n" % lead for lead in
        [b"I", b"II", b"III", b"aVR", b"aVL", b"aVF", b"V1", b"V2", b"V3", b"V4", b"V5", b"V6"]))
    put("fuzz_wfdb_header", "fmt212", b"r 2 360 4\nr.dat 212 200 11 1024 995 0 0 MLII\n"
                                      b"r.dat 212 200 11 1024 1011 0 0 V1\n")
    two = b"r 2 500 4\nr.dat 16 1000 16 0 0 0 0 I\nr.dat 16 1000 16 0 0 0 0 II\n"
    put("fuzz_records", "wfdb16", b"\x02" + two + b"\x00" + struct.pack("<8h", *range(8)))
    csv = b"I,II,V1\n" + b"".join(b"%d,%d,%d\n" % (i, -i, 2 * i) for i in range(8))
    put("fuzz_records", "csv", b"\x01" + csv)
    # A MATLAB v4 'val' matrix of int16 (type 30), 2 x 4, as the Challenge files hold.
    mat = struct.pack("<iiiii", 30, 2, 4, 0, 4) + b"val\x00" + struct.pack("<8h", *range(8))
    put("fuzz_records", "mat_v4", b"\x00" + mat)


def checkpoint_seeds():
    # A tiny pickle (protocol 2) of {"a": 1}; the target wraps non-zip inputs into an archive.
    put("fuzz_checkpoint", "dict_pickle", b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.")


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    mdp_seeds()
    body_seeds()
    extension_seeds()
    npy_seeds()
    record_seeds()
    checkpoint_seeds()
    print("seed corpora in", CORPUS)
