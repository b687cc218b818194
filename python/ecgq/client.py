"""The ecgq client: many jobs in flight on one Majordomo 0.2 DEALER, each a Future.

One background thread owns the socket (pyzmq sockets are not thread-safe); submit() and the MMI
calls hand it frames and wait on Futures, so a Client may be used from any number of threads.
A broker restart is ridden through: when the connection is re-established, every unfinished job
is sent again under its id (the broker runs a repeated id once and re-binds it)."""
import collections
import concurrent.futures
import itertools
import os
import re
import threading
import time
from typing import Iterable, Iterator, List, Optional

import msgpack
import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from .errors import EcgqError
from .records import STANDARD_LEADS, read_record
from .results import Result

MDPC = b"MDPC02"
REQUEST, PARTIAL, FINAL = b"\x01", b"\x02", b"\x03"
_DTYPES = {np.dtype("<f4"): "f32", np.dtype("<f8"): "f64", np.dtype("<i2"): "i16"}


def _z85_key(value: str, public: bool = True) -> bytes:
    """A CURVE key from a czmq certificate file (public-key / secret-key) or a Z85 string."""
    if os.path.exists(value):
        text = open(value, encoding="utf-8").read()
        name = "public-key" if public else "secret-key"
        m = re.search(name + r'\s*=\s*"([^"]{40})"', text)
        if not m:
            raise EcgqError("bad_usage", f"{value} holds no {name} (a czmq zcert file expected)")
        return m.group(1).encode()
    if len(value) != 40:
        raise EcgqError("bad_usage", "a broker key is a certificate file or a 40-character Z85 key")
    return value.encode()


class Client:
    """A producer connection. `curve_cert` is this client's secret certificate file (from
    `ecgq keygen`), `broker_key` the broker's public certificate file or Z85 key. `timeout` is
    how long the broker may stay silent while jobs are outstanding before they fail with
    broker_unreachable."""

    def __init__(self, broker: str = "tcp://127.0.0.1:5555", service: str = "ecg-fm", *,
                 curve_cert: Optional[str] = None, broker_key: Optional[str] = None,
                 timeout: float = 60.0):
        self.broker, self.service, self.timeout = broker, service, timeout
        self._curve = None
        if curve_cert or broker_key:
            if not (curve_cert and broker_key):
                raise EcgqError("bad_usage", "CURVE needs both curve_cert and broker_key")
            self._curve = (_z85_key(curve_cert, True), _z85_key(curve_cert, False),
                           _z85_key(broker_key, True))
        self._prefix = os.urandom(16).hex()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._jobs = {}  # id -> [future, frames]
        self._mmi = collections.defaultdict(collections.deque)  # service -> futures
        self._outbox = collections.deque()
        self._ctx = zmq.Context()
        self._wake_address = f"inproc://ecgq-wake-{id(self)}"
        self._wake_in = self._ctx.socket(zmq.PAIR)
        self._wake_in.bind(self._wake_address)
        self._wake_out = self._ctx.socket(zmq.PAIR)
        self._wake_out.connect(self._wake_address)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecgq-client", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API
    def submit(self, samples, fs: float, leads: Optional[List[str]] = None, *,
               outputs: Optional[List[str]] = None, deadline: Optional[float] = None,
               meta=None, units: Optional[str] = None, job_id: Optional[str] = None,
               missing_leads: Optional[str] = None) -> concurrent.futures.Future:
        """Sends one ECG ([leads, samples]; float32, float64 or int16) and returns a Future of
        its Result; a failed job raises EcgqError from future.result(). missing_leads="zero"
        gives leads that cannot be derived to the model as zeros (Result.masked_leads names
        them; accuracy with masked leads is not validated); the default refuses such records."""
        if missing_leads not in (None, "refuse", "zero"):
            raise EcgqError("bad_request", "missing_leads must be refuse or zero", "missing_leads")
        a = np.asarray(samples)
        if a.dtype not in _DTYPES:
            a = a.astype("<f4")
        a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
        if a.ndim != 2:
            raise EcgqError("bad_shape", f"samples must be [leads, samples], got {a.shape}", "ecg.shape")
        leads = list(leads or STANDARD_LEADS[: a.shape[0]])
        job = {"v": 1, "id": job_id or f"{self._prefix}-{next(self._seq)}",
               "ecg": {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data": a.tobytes()},
               "fs": float(fs), "leads": leads}
        if outputs:
            job["outputs"] = list(outputs)
        if deadline is not None:
            job["deadline_ms"] = int(deadline * 1000)
        if units:
            job["units"] = units
        if missing_leads == "zero":
            job["missing_leads"] = missing_leads
        if meta is not None:
            job["meta"] = meta
        future = concurrent.futures.Future()
        frames = [MDPC, REQUEST, self.service.encode(), msgpack.packb(job, use_bin_type=True)]
        with self._lock:
            if job["id"] in self._jobs:
                raise EcgqError("bad_request", f"job id {job['id']} is already outstanding", "id")
            self._jobs[job["id"]] = [future, frames]
        self._send(frames)
        return future

    def predict(self, path: str, *, fs: Optional[float] = None, leads=None, **options) -> Result:
        """Reads a file and waits for its Result."""
        record = read_record(path, fs=fs, leads=leads)
        return self.submit(record.samples, record.fs, record.leads, **options).result()

    def map(self, paths: Iterable[str], *, max_in_flight: int = 64, ordered: bool = False,
            return_exceptions: bool = False, **options) -> Iterator[Result]:
        """Results for many files as they come (or in order), at most `max_in_flight` jobs
        outstanding. A failure raises EcgqError (or is yielded, with return_exceptions)."""
        pending = collections.OrderedDict()
        paths = iter(paths)
        exhausted = False
        while True:
            while not exhausted and len(pending) < max_in_flight:
                path = next(paths, None)
                if path is None:
                    exhausted = True
                    break
                try:
                    record = read_record(path, fs=options.get("fs"), leads=options.get("leads"))
                    kwargs = {k: v for k, v in options.items() if k not in ("fs", "leads")}
                    future = self.submit(record.samples, record.fs, record.leads, **kwargs)
                except (ValueError, OSError) as e:
                    future = concurrent.futures.Future()
                    future.set_exception(EcgqError("bad_request", f"{path}: {e}", "path"))
                pending[future] = path
            if not pending:
                return
            if ordered:
                future = next(iter(pending))
                future.exception()  # waits
            else:
                done, _ = concurrent.futures.wait(list(pending), return_when="FIRST_COMPLETED")
                future = next(f for f in pending if f in done)
            pending.pop(future)
            error = future.exception()
            if error is None:
                yield future.result()
            elif return_exceptions:
                yield error
            else:
                raise error

    def status(self, timeout: float = 5.0) -> dict:
        """The broker's mmi.status, decoded."""
        body = self._call("mmi.status", [b""], timeout)
        return msgpack.unpackb(body[0], raw=False)

    def service_available(self, service: Optional[str] = None, timeout: float = 5.0) -> bool:
        """True when the service has a live worker (mmi.service)."""
        return self._call("mmi.service", [(service or self.service).encode()], timeout)[0] == b"200"

    def close(self):
        """Stops the I/O thread; outstanding jobs fail with client_closed."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake_out.send(b"")
        self._thread.join()
        self._wake_out.close(0)
        self._wake_in.close(0)
        self._ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ the I/O thread
    def _send(self, frames):
        with self._lock:
            self._outbox.append(frames)
        self._wake_out.send(b"")

    def _call(self, service: str, body: list, timeout: float):
        future = concurrent.futures.Future()
        with self._lock:
            self._mmi[service].append(future)
        self._send([MDPC, REQUEST, service.encode()] + body)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # its late reply, if any, is dropped
            raise EcgqError("broker_unreachable", f"no reply from {self.broker} to {service} "
                            f"within {timeout} s") from None

    def _run(self):
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        if self._curve:
            sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = self._curve
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        sock.connect(self.broker)
        poller = zmq.Poller()
        for s in (sock, self._wake_in, monitor):
            poller.register(s, zmq.POLLIN)
        handshakes, last_traffic, was_busy = 0, time.monotonic(), False
        while not self._closed.is_set():
            ready = dict(poller.poll(100))
            if self._wake_in in ready:
                while self._wake_in.poll(0):
                    self._wake_in.recv()
            with self._lock:
                outbox, self._outbox = self._outbox, collections.deque()
                busy = bool(self._jobs)
            if busy and not was_busy:
                last_traffic = time.monotonic()  # silence counts from the first job out
            was_busy = busy
            for frames in outbox:
                sock.send_multipart(frames)
            if monitor in ready:
                while monitor.poll(0):
                    if recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        handshakes += 1
                        if handshakes > 1:
                            self._resend_all(sock)
                            last_traffic = time.monotonic()
            while sock in ready and sock.poll(0):
                self._handle(sock.recv_multipart())
                last_traffic = time.monotonic()
            if busy and time.monotonic() - last_traffic > self.timeout:
                self._fail_all("broker_unreachable",
                               f"no reply from broker {self.broker} for {self.timeout} s")
        self._fail_all("client_closed", "the client was closed")
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)

    def _resend_all(self, sock):
        with self._lock:
            frames = [f for _, f in self._jobs.values()]
        for f in frames:
            sock.send_multipart(f)

    def _fail_all(self, code, message):
        with self._lock:
            jobs, self._jobs = self._jobs, {}
        for job_id, (future, _) in jobs.items():
            future.set_exception(EcgqError(code, message, job_id=job_id))

    def _handle(self, frames):
        if len(frames) < 3 or frames[0] != MDPC:
            return
        command, service = frames[1], frames[2].decode(errors="replace")
        if service.startswith("mmi."):
            with self._lock:
                waiting = self._mmi[service]
                while waiting and waiting[0].cancelled():
                    waiting.popleft()
                future = waiting.popleft() if waiting else None
            if future is not None and command == FINAL:
                future.set_result(frames[3:])
            return
        if command != FINAL or len(frames) < 4:
            return
        try:
            body = msgpack.unpackb(frames[3], raw=False)
        except Exception:  # a body that is not msgpack names no job
            return
        if not isinstance(body, dict):
            return
        with self._lock:
            job = self._jobs.pop(body.get("id", ""), None)
        if job is None:
            return
        future = job[0]
        if body.get("status") == "ok":
            future.set_result(Result.from_wire(body))
        else:
            e = body.get("error") or {}
            future.set_exception(EcgqError(e.get("code", "error"), e.get("message", ""),
                                           e.get("field", ""), e.get("retry_after_ms"),
                                           body.get("id", "")))
