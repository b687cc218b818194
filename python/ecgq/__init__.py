"""ecgq: a Python client for the ecgq broker (ECG-FM predictions and embeddings).

    from ecgq import Client
    with Client("tcp://127.0.0.1:5555") as client:
        result = client.predict("data/ecg/1.hea")           # a file: WFDB, .mat+.hea, CSV, .npy
        print(result.label_probs)                           # {label: probability}
        future = client.submit(samples, fs=500, leads=LEADS)  # samples: [leads, samples] array
        for result in client.map(paths):                    # many files, bounded in flight
            ...

Speaks Majordomo 0.2 with msgpack bodies (docs/protocol.md) over pyzmq; CURVE with
curve_cert= and broker_key= (docs/security.md). Needs pyzmq, msgpack and numpy (Debian's
python3-zmq, python3-msgpack, python3-numpy).
"""
from .client import Client
from .errors import EcgqError
from .records import Record, read_record
from .results import Result

__all__ = ["Client", "EcgqError", "Record", "Result", "read_record"]
__version__ = "0.1.0"
