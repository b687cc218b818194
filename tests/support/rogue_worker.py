#!/usr/bin/python3
"""A Majordomo 0.2 worker that misbehaves, for the reliability tests.

rogue_worker.py ENDPOINT SERVICE MODE WORKER_ID CAPACITY

It sends READY (with metadata naming WORKER_ID and advertising CAPACITY), heartbeats every 100 ms
and answers the broker's heartbeats, so the broker keeps it registered. MODE says what it does
with the jobs it receives:
  blackhole  never answers them (a stuck compute thread)
  garbage    answers each with a FINAL that is not a result
  otherjob   answers each with a well-formed ok result naming another job
It prints "job" on stdout for every REQUEST it receives, and stops on SIGTERM.
"""
import signal
import struct
import sys
import time

import zmq

HEADER = b"MDPW02"
READY, REQUEST, FINAL, HEARTBEAT, DISCONNECT = b"\x01", b"\x02", b"\x04", b"\x05", b"\x06"


def mp_str(s):
    b = s.encode()
    assert len(b) < 32
    return bytes([0xA0 | len(b)]) + b


def mp_int(n):
    return b"\xcd" + struct.pack(">H", n) if n > 127 else bytes([n])


def ready_metadata(worker_id, capacity):
    return b"\x82" + mp_str("worker_id") + mp_str(worker_id) + mp_str("capacity") + mp_int(capacity)


def ok_result_naming(job_id):
    # {v: 1, id: job_id, status: "ok"}
    return b"\x83" + mp_str("v") + b"\x01" + mp_str("id") + mp_str(job_id) + mp_str("status") + mp_str("ok")


def main():
    endpoint, service, mode, worker_id, capacity = sys.argv[1:6]
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.send_multipart([HEADER, READY, service.encode(), ready_metadata(worker_id, int(capacity))])
    next_beat = time.monotonic()
    while running[0]:
        if time.monotonic() >= next_beat:
            sock.send_multipart([HEADER, HEARTBEAT])
            next_beat = time.monotonic() + 0.1
        if not sock.poll(50):
            continue
        frames = sock.recv_multipart()
        if len(frames) < 2 or frames[0] != HEADER:
            continue
        if frames[1] == DISCONNECT:
            sock.send_multipart([HEADER, READY, service.encode(), ready_metadata(worker_id, int(capacity))])
            continue
        if frames[1] != REQUEST or len(frames) < 4:
            continue
        print("job", flush=True)
        token = frames[2]
        if mode == "garbage":
            sock.send_multipart([HEADER, FINAL, token, b"", b"\xc1 this is not msgpack"])
        elif mode == "otherjob":
            sock.send_multipart([HEADER, FINAL, token, b"", ok_result_naming("not-your-job")])
    sock.send_multipart([HEADER, DISCONNECT])
    sock.close()
    ctx.term()


if __name__ == "__main__":
    main()
