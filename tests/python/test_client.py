#!/usr/bin/python3
"""The Python client (python/ecgq) against a real ecgq-broker and ecgq-worker (the tiny demo
model) on 127.0.0.1: files and arrays in, Results out, errors as exceptions with their codes,
map() over many files, a broker restart ridden through, and an offline pip install.

    /usr/bin/python3 tests/python/test_client.py --bin-dir BUILD/bin
"""
import argparse
import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
import ecgq  # noqa: E402

BIN = None
DEMO = os.path.join(ROOT, "data/models/demo-random-weights-tiny.pt")
ECG_DIR = os.path.join(ROOT, "data/ecg")


def free_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def wait_for(condition, timeout=60.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """A broker and a worker as processes; the broker can be killed and restarted."""

    def __init__(self, worker=True):
        self.endpoint = free_endpoint()
        self.logs = tempfile.TemporaryDirectory()
        self.broker = self.start_broker()
        self.worker = self.start_worker() if worker else None

    def spawn(self, argv, log):
        with open(os.path.join(self.logs.name, log), "ab") as f:
            return subprocess.Popen(argv, stderr=f)

    def start_broker(self):
        return self.spawn([os.path.join(BIN, "ecgq-broker"), "--bind", self.endpoint,
                           "--heartbeat-interval", "100ms", "--heartbeat-liveness", "20"],
                          "broker.log")

    def start_worker(self):
        return self.spawn([os.path.join(BIN, "ecgq-worker"), "serve", "--broker", self.endpoint,
                           "--checkpoint", DEMO, "--threads", "1", "--heartbeat-interval", "100ms",
                           "--heartbeat-liveness", "20"], "worker.log")

    def stop(self):
        for p in (self.worker, self.broker):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        self.logs.cleanup()


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster()
        cls.client = ecgq.Client(cls.cluster.endpoint, timeout=30)
        wait_for(lambda: cls.client.service_available(), 60, "a live ecg-fm worker")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.stop()

    def test_predict_a_wfdb_file(self):
        r = self.client.predict(os.path.join(ECG_DIR, "1.hea"))
        self.assertIsInstance(r, ecgq.Result)
        self.assertEqual(len(r.labels), len(r.probs))
        self.assertGreater(len(r.labels), 0)
        self.assertEqual(set(r.label_probs), set(r.labels))
        self.assertTrue(all(0 <= p <= 1 for p in r.label_probs.values()))
        self.assertEqual(r.n_segments, 2)  # 10 s at 500 Hz
        self.assertIn("infer_ms", r.timings)

    def test_clinical_files_go_through_ecgq_convert(self):
        os.environ["ECGQ_BIN"] = os.path.join(BIN, "ecgq")
        scp = os.path.join(ROOT, "tests/data/clinical/scp-ecg/pixelmed_PFE105_redred.scp")
        r = self.client.predict(scp)
        self.assertEqual(r.n_segments, 2)
        self.assertEqual(len(r.labels), 17)
        # 8 stored leads; `ecgq convert` writes the four derived limb leads too.
        self.assertEqual(len(ecgq.read_record(scp).leads), 12)
        with self.assertRaises(ValueError) as e:
            ecgq.read_record(scp, fs=250)
        self.assertIn("records 500 Hz but fs says 250 Hz", str(e.exception))
        self.assertEqual(ecgq.read_record(scp, fs=500).fs, 500)

    def test_submit_an_array_returns_a_future(self):
        t = np.arange(5000) / 500.0
        samples = np.stack([np.sin(2 * np.pi * 1.2 * t + k) for k in range(12)]).astype(np.float32)
        future = self.client.submit(samples, fs=500, outputs=["probs", "embedding", "segments"],
                                    meta={"patient": "synthetic"})
        self.assertIsInstance(future, concurrent.futures.Future)
        r = future.result(60)
        self.assertEqual(r.meta, {"patient": "synthetic"})
        self.assertEqual(r.embedding.ndim, 1)
        self.assertEqual(r.segment_probs.shape, (2, len(r.labels)))

    def test_map_yields_one_result_per_file(self):
        paths = sorted(os.path.join(ECG_DIR, f) for f in os.listdir(ECG_DIR) if f.endswith(".hea"))
        results = list(self.client.map(paths, max_in_flight=2))
        self.assertEqual(len(results), len(paths))
        self.assertTrue(all(isinstance(r, ecgq.Result) for r in results))

    def test_errors_are_exceptions_with_their_code(self):
        two_leads = np.zeros((2, 5000), dtype=np.float32)
        with self.assertRaises(ecgq.EcgqError) as e:
            self.client.submit(two_leads, fs=500, leads=["I", "II"]).result(60)
        self.assertEqual(e.exception.code, "missing_leads")
        # Opting in: the chest leads go to the model as zeros and the result names them.
        t = np.arange(5000) / 500.0
        limbs = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)]).astype(np.float32)
        masked = self.client.submit(limbs, fs=500, leads=["I", "II"], missing_leads="zero").result(60)
        self.assertEqual(masked.masked_leads, ["V1", "V2", "V3", "V4", "V5", "V6"])
        self.assertEqual(masked.derived_leads, ["III", "aVR", "aVL", "aVF"])
        with self.assertRaises(ecgq.EcgqError) as e:
            self.client.submit(limbs, fs=500, missing_leads="guess")
        self.assertEqual(e.exception.field, "missing_leads")
        with self.assertRaises(ecgq.EcgqError) as e:
            self.client.submit(np.zeros(10), fs=500)
        self.assertEqual(e.exception.code, "bad_shape")
        errors = list(self.client.map([os.path.join(ECG_DIR, "nope.hea")], return_exceptions=True))
        self.assertEqual(errors[0].code, "bad_request")

    def test_status_is_the_brokers(self):
        s = self.client.status()
        self.assertIn("ecg-fm", s["services"])


class RideThroughTest(unittest.TestCase):
    def test_a_job_outlives_a_broker_restart(self):
        # No worker yet: the job waits in the broker, which is killed and started again.
        cluster = Cluster(worker=False)
        try:
            with ecgq.Client(cluster.endpoint, timeout=30) as client:
                wait_for(lambda: client.status()["services"] is not None, 20, "the broker")
                future = client.submit(np.zeros((12, 2500), dtype=np.float32) + 0.1, fs=500)
                wait_for(lambda: client.status()["services"].get("ecg-fm", {}).get("queued") == 1,
                         20, "the job queued")
                cluster.broker.kill()
                cluster.broker.wait()
                cluster.broker = cluster.start_broker()
                cluster.worker = cluster.start_worker()
                self.assertEqual(future.result(60).n_segments, 1)
        finally:
            cluster.stop()


class PipInstallTest(unittest.TestCase):
    def test_installs_offline_into_a_venv_with_system_packages(self):
        with tempfile.TemporaryDirectory() as tmp:
            venv = os.path.join(tmp, "venv")
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv],
                           check=True)
            src = os.path.join(tmp, "python")
            shutil.copytree(os.path.join(ROOT, "python"), src)
            pip = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--no-index",
                                  "--no-build-isolation", "--no-deps", src],
                                 capture_output=True, text=True)
            self.assertEqual(pip.returncode, 0, pip.stdout + pip.stderr)
            check = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                                    "import ecgq, sys; print(ecgq.__file__)"],
                                   capture_output=True, text=True, cwd=tmp)
            self.assertEqual(check.returncode, 0, check.stderr)
            self.assertIn(venv, check.stdout)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    args, rest = ap.parse_known_args()
    BIN = args.bin_dir
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
