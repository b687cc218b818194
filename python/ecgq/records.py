"""Reading ECG files into [leads, samples] arrays: WFDB (format 16, 212, 16 with a byte offset as
in Challenge .mat + .hea pairs), CSV (a header row of lead names, optional time column and
"# fs: 500" comment) and .npy ([leads, samples] or [samples, leads]). Other formats go through
`ecgq convert` when that program is on PATH. The worker preprocesses (resampling, segmenting),
so samples go as they are, in mV."""
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

STANDARD_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@dataclass
class Record:
    """Samples in mV, [leads, samples] float32, their rate and lead names."""

    samples: np.ndarray
    fs: float
    leads: List[str]


def read_record(path: str, fs: Optional[float] = None, leads: Optional[List[str]] = None) -> Record:
    """Reads `path`; `fs` and `leads` fill in what the file cannot say (.npy, CSV)."""
    lower = path.lower()
    if lower.endswith(".hea"):
        return _read_wfdb(path)
    if lower.endswith(".mat") and os.path.exists(path[:-4] + ".hea"):
        return _read_wfdb(path[:-4] + ".hea")
    if lower.endswith(".npy"):
        return _read_npy(path, fs, leads)
    if lower.endswith(".csv"):
        return _read_csv(path, fs, leads)
    if lower.endswith(".dat") and os.path.exists(path[:-4] + ".hea"):
        return _read_wfdb(path[:-4] + ".hea")
    return _read_by_convert(path, fs)


def _read_wfdb(header_path: str) -> Record:
    with open(header_path, encoding="utf-8", errors="replace") as f:
        lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    if not lines:
        raise ValueError(f"{header_path}: empty WFDB header")
    record_line = lines[0].split()
    n_sig = int(record_line[1])
    fs = float(record_line[2].split("/")[0]) if len(record_line) > 2 else 250.0
    n_samples = int(record_line[3]) if len(record_line) > 3 else None
    signals = [l.split() for l in lines[1 : 1 + n_sig]]
    if len(signals) != n_sig:
        raise ValueError(f"{header_path}: {n_sig} signals announced, {len(signals)} listed")
    data_file = signals[0][0]
    fmt_text = signals[0][1]
    fmt, _, offset = fmt_text.partition("+")
    fmt = re.sub(r"[^0-9]", "", fmt.split("x")[0].split(":")[0])
    path = os.path.join(os.path.dirname(header_path), data_file)
    if os.path.basename(data_file) != data_file:
        raise ValueError(f"{header_path}: data file {data_file} is not in the header's directory")
    raw = np.fromfile(path, dtype=np.uint8)[int(offset or 0) :]
    if fmt == "16":
        values = raw[: raw.size - raw.size % 2].view("<i2").astype(np.float64)
    elif fmt == "212":
        triples = raw[: raw.size - raw.size % 3].reshape(-1, 3).astype(np.int32)
        a = triples[:, 0] | ((triples[:, 1] & 0x0F) << 8)
        b = triples[:, 2] | ((triples[:, 1] & 0xF0) << 4)
        values = np.stack([a, b], axis=1).reshape(-1)
        values = np.where(values >= 2048, values - 4096, values).astype(np.float64)
    else:
        raise ValueError(f"{header_path}: WFDB format {fmt_text} is not read here (16, 212)")
    frames = values.size // n_sig
    if n_samples:
        frames = min(frames, n_samples)
    samples = values[: frames * n_sig].reshape(frames, n_sig).T
    out = np.empty(samples.shape, dtype=np.float32)
    names = []
    for i, fields in enumerate(signals):
        gain, baseline, units = _wfdb_gain(fields)
        out[i] = (samples[i] - baseline) / gain * _to_mv(units)
        names.append(fields[8] if len(fields) > 8 else f"ch{i}")
    return Record(out, fs, names)


def _wfdb_gain(fields):
    """(gain, baseline, units) of a WFDB signal line; gain 0 means 200 (the WFDB default)."""
    gain, baseline, units = 200.0, None, "mV"
    if len(fields) > 2:
        m = re.match(r"([-+0-9.eE]+)(?:\(([-0-9]+)\))?(?:/(\S+))?", fields[2])
        if m:
            gain = float(m.group(1)) or 200.0
            baseline = float(m.group(2)) if m.group(2) else None
            units = m.group(3) or "mV"
    if baseline is None:
        baseline = float(fields[4]) if len(fields) > 4 else 0.0
    return gain, baseline, units


def _to_mv(units: str) -> float:
    u = units.lower().replace("µ", "u")
    return {"mv": 1.0, "uv": 1e-3, "v": 1e3, "nv": 1e-6}.get(u, 1.0)


def _read_npy(path, fs, leads) -> Record:
    a = np.load(path, allow_pickle=False)
    if a.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array [leads, samples], got shape {a.shape}")
    if a.shape[0] > a.shape[1]:
        a = a.T
    if fs is None:
        warnings.warn(f"{path}: no fs given; 500 Hz assumed", stacklevel=3)
        fs = 500.0
    return Record(a.astype(np.float32), float(fs), list(leads or STANDARD_LEADS[: a.shape[0]]))


def _read_csv(path, fs, leads) -> Record:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read().splitlines()
    header, rows = None, []
    for line in text:
        s = line.strip()
        m = re.match(r"#\s*fs\s*:\s*([0-9.]+)", s)
        if m and fs is None:
            fs = float(m.group(1))
            continue
        if not s or s.startswith("#"):
            continue
        cells = [c.strip() for c in s.split(",")]
        if header is None:
            header = cells
            continue
        rows.append([float(c) for c in cells])
    if header is None or not rows:
        raise ValueError(f"{path}: expected a header row of lead names and sample rows")
    a = np.array(rows, dtype=np.float64).T
    keep = [i for i, h in enumerate(header) if h.lower() not in ("t", "time", "time_s", "fs")]
    if fs is None:
        times = [i for i, h in enumerate(header) if h.lower() in ("t", "time", "time_s")]
        if times and a.shape[1] > 1:
            fs = 1.0 / float(np.median(np.diff(a[times[0]])))
        else:
            warnings.warn(f"{path}: no fs given; 500 Hz assumed", stacklevel=3)
            fs = 500.0
    return Record(a[keep].astype(np.float32), float(fs), leads or [header[i] for i in keep])


def _read_by_convert(path, fs=None) -> Record:
    ecgq = shutil.which("ecgq") or os.environ.get("ECGQ_BIN")
    if not ecgq:
        raise ValueError(f"{path}: not a WFDB, CSV or .npy file, and no `ecgq` program to convert it")
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([ecgq, "convert", path, "--to", "npy", "--out", out],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ValueError(f"{path}: {done.stderr.strip() or 'ecgq convert failed'}")
        import json

        stem = os.path.splitext(os.path.basename(path))[0]
        info = json.load(open(os.path.join(out, stem + ".json")))
        samples = np.load(os.path.join(out, stem + ".npy"))
        # The file carries its own rate: a different `fs` is a mistake to say, not to apply.
        if fs is not None and abs(float(fs) - float(info["fs"])) > 1e-6 * float(info["fs"]):
            raise ValueError(f"{path}: the {info.get('source_format', '')} file records "
                             f"{float(info['fs']):g} Hz but fs says {float(fs):g} Hz; files that "
                             "carry their sample rate keep it (leave fs out)")
        return Record(samples.astype(np.float32), float(info["fs"]), list(info["leads"]))
