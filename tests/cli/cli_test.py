#!/usr/bin/python3
"""Command-line tests in the style of whisper.cpp's: run a built program on committed data and
compare what it prints and writes with committed expected output under tests/data/expected/.

Usage: /usr/bin/python3 tests/cli/cli_test.py --bin-dir BUILD/bin [--update] [CASE ...]

Cases (ctest runs each as cli.<case>, label "cli"; no CASE means all of them):
  infer               ecgq-worker infer on the tiny fine-tuned checkpoint and ecgfm/input.npy
  inspect_finetuned   ecgq-worker inspect on the tiny fine-tuned checkpoint
  inspect_pretrained  ecgq-worker inspect on the tiny pretrained checkpoint
  submit              ecgq submit of five real records through a real broker and a warm worker
  export_roundtrip    ecgq-worker export of the tiny checkpoints (fp32, bf16): infer and inspect of
                      the model file give the source's outputs and name the source's sha256
  export_refusals     a truncated, altered or other-version model file, a conflicting --precision
                      and the export of a model file are refused with specific errors

Comparison: floats within an absolute tolerance of 1e-5 (TOLERANCE), everything else exact:
file sets, .npy shapes and dtypes, text lines, JSON keys in order, types, strings, integers and
booleans. Values that change from run to run are masked both when recording and when comparing:
timings (printed milliseconds, peak RSS, the JSON "timings" object), the job id and the output
directory. --update runs the cases and rewrites their expected output instead of comparing
(review the diff before committing it).
"""

import argparse
import hashlib
import difflib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

TOLERANCE = 1e-5
SOURCE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(SOURCE, "tests", "data")
EXPECTED = os.path.join(DATA, "expected")
# Relative to SOURCE (the programs run there), so that printed paths do not depend on the clone.
TINY_FINETUNED = "data/models/demo-random-weights-tiny.pt"  # = tiny_finetuned.pt, same bytes
TINY_PRETRAINED = "tests/data/ecgfm/tiny_pretrained.pt"
INPUT = "tests/data/ecgfm/input.npy"
# Relative to DATA: 12-lead .mat (Challenge 2021), LUDB, PTB-XL at 100 Hz, PTB with three Frank
# leads over two signal files at 1000 Hz (7 segments), and a 2-lead record the worker refuses.
SUBMIT_RECORDS = ["ecg/HR06000.hea", "ecg/1.hea", "ecg/00001_lr.hea", "ecg/s0010_re.hea",
                  "ecg/data_101_6.hea"]
RUN_TIMEOUT_S = 300
READY_TIMEOUT_S = 60
MASK = "<varies>"


class Mismatch(Exception):
    """The output differs from the expected output (the message says where)."""


def run(argv, cwd, timeout=RUN_TIMEOUT_S, env=None):
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env)
    return r.returncode, r.stdout, r.stderr


def check_exit(name, code, expected, out, err):
    if code != expected:
        raise Mismatch(f"{name}: exit code {code}, expected {expected}\nstdout:\n{out}\n"
                       f"stderr:\n{err}")


# ---------------------------------------------------------------- comparison

def compare_values(got, want, where):
    """Recursively compares decoded JSON: floats within TOLERANCE, everything else exact."""
    if want == MASK:
        return
    if isinstance(want, bool) or isinstance(got, bool):
        if got is not want:
            raise Mismatch(f"{where}: {got!r}, expected {want!r}")
    elif isinstance(want, float) or isinstance(got, float):
        if not isinstance(got, (int, float)) or not isinstance(want, (int, float)):
            raise Mismatch(f"{where}: {got!r}, expected {want!r}")
        if abs(got - want) > TOLERANCE:
            raise Mismatch(f"{where}: {got!r}, expected {want!r} (|diff| {abs(got - want):.3g} "
                           f"> {TOLERANCE})")
    elif isinstance(want, dict):
        if not isinstance(got, dict) or list(got) != list(want):
            raise Mismatch(f"{where}: keys {list(got) if isinstance(got, dict) else got!r}, "
                           f"expected {list(want)}")
        for k in want:
            compare_values(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            raise Mismatch(f"{where}: {got!r}, expected a list of {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            compare_values(g, w, f"{where}[{i}]")
    elif got != want or type(got) is not type(want):
        raise Mismatch(f"{where}: {got!r}, expected {want!r}")


def compare_text(got, want, where):
    if got != want:
        diff = difflib.unified_diff(want.splitlines(True), got.splitlines(True), "expected", "got")
        raise Mismatch(f"{where} differs:\n" + "".join(diff))


def compare_npy(got_path, want_path, where):
    got, want = np.load(got_path), np.load(want_path)
    if got.dtype != want.dtype or got.shape != want.shape:
        raise Mismatch(f"{where}: {got.dtype} {got.shape}, expected {want.dtype} {want.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0
    if not diff <= TOLERANCE:
        raise Mismatch(f"{where}: max |diff| {diff:.3g} > {TOLERANCE}")


def compare_dirs(got_dir, want_dir, where):
    got_files, want_files = sorted(os.listdir(got_dir)), sorted(os.listdir(want_dir))
    if got_files != want_files:
        raise Mismatch(f"{where}: files {got_files}, expected {want_files}")
    for name in want_files:
        got, want = os.path.join(got_dir, name), os.path.join(want_dir, name)
        if name.endswith(".npy"):
            compare_npy(got, want, f"{where}/{name}")
        else:
            with open(got) as g, open(want) as w:
                compare_text(g.read(), w.read(), f"{where}/{name}")


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def read_text(path):
    with open(path) as f:
        return f.read()


# ---------------------------------------------------------------- cases

def case_infer(bins, update):
    """infer writes encoder_out/embedding/logits/probs .npy and labels.txt, prints one line."""
    want_dir = os.path.join(EXPECTED, "infer")
    with tempfile.TemporaryDirectory(prefix="ecgq-cli-") as tmp:
        out_dir = os.path.join(tmp, "out")
        code, out, err = run([bins["ecgq-worker"], "infer", "--checkpoint", TINY_FINETUNED,
                              "--input", INPUT, "--out", out_dir, "--threads", "1"], SOURCE)
        check_exit("infer", code, 0, out, err)
        stdout = out.replace(out_dir, "<out>")
        stdout = re.sub(r"\(load [0-9.]+ ms, infer [0-9.]+ ms\)",
                        f"(load {MASK} ms, infer {MASK} ms)", stdout)
        write_text(os.path.join(out_dir, "stdout.txt"), stdout)
        if update:
            shutil.rmtree(want_dir, ignore_errors=True)
            shutil.copytree(out_dir, want_dir)
        else:
            compare_dirs(out_dir, want_dir, "expected/infer")


def inspect_case(checkpoint, expected_name):
    def case(bins, update):
        code, out, err = run([bins["ecgq-worker"], "inspect", "--checkpoint", checkpoint,
                              "--threads", "1"], SOURCE)
        check_exit("inspect", code, 0, out, err)
        # Load time and memory vary; the field stays (its name and position are compared).
        out = re.sub(r"^(load_ms|peak_rss):( *).*$", rf"\1:\2{MASK}", out, flags=re.M)
        # The oneDNN kernel of the packed projections depends on the CPU (brg:avx512_core_amx...).
        out = re.sub(r"(projections pre-packed \()[^)]*(\))", rf"\1{MASK}\2", out)
        path = os.path.join(EXPECTED, expected_name)
        if update:
            write_text(path, out)
        else:
            compare_text(out, read_text(path), "expected/" + expected_name)
    return case


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_state(status, worker_id):
    """The state of `worker_id` in an mmi.status reply for ecg-fm, or None."""
    for w in status.get("services", {}).get("ecg-fm", {}).get("workers", []):
        if w.get("id") == worker_id:
            return w.get("state")
    return None


class Cluster:
    """A real ecgq-broker and one `ecgq-worker serve` (tiny checkpoint) on a free port."""

    def __init__(self, bins, logs):
        self.bins, self.logs, self.procs = bins, logs, []

    def __enter__(self):
        # A port found free can be taken before the broker binds it: then start over.
        for attempt in range(3):
            self.endpoint = f"tcp://127.0.0.1:{free_port()}"
            broker = self.spawn(f"broker{attempt}", [self.bins["ecgq-broker"], "--bind",
                                                     self.endpoint])
            worker = self.spawn(f"worker{attempt}", [
                self.bins["ecgq-worker"], "serve", "--broker", self.endpoint, "--checkpoint",
                TINY_FINETUNED, "--worker-id", "w1", "--threads", "1"])
            if self.wait_ready(broker, worker):
                return self
            lost_port = broker.poll() is not None and worker.poll() is None
            self.stop()
            if not lost_port:
                break  # not a lost port race: report it
        raise Mismatch("broker and worker did not come up:\n" + self.log_text())

    def spawn(self, name, argv):
        out = open(os.path.join(self.logs, name + ".log"), "w")
        p = subprocess.Popen(argv, cwd=SOURCE, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT)
        out.close()
        self.procs.append(p)
        return p

    def wait_ready(self, broker, worker):
        """Polls `ecgq status --json` until the broker reports worker w1 warm (model loaded), so
        that no job of the run is a cold start."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if broker.poll() is not None or worker.poll() is not None:
                return False
            code, out, _ = run([self.bins["ecgq"], "--broker", self.endpoint, "status", "--json",
                                "--timeout", "500ms"], SOURCE, timeout=30)
            if code == 0 and worker_state(json.loads(out), "w1") == "warm":
                return True
            time.sleep(0.05)  # poll cadence only; readiness is what the broker reports
        return False

    def log_text(self):
        text = ""
        for name in sorted(os.listdir(self.logs)):
            text += f"--- {name}\n" + read_text(os.path.join(self.logs, name))
        return text

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    def __exit__(self, *exc):
        self.stop()


def mask_result(line):
    """A result line with the values that change between runs replaced by MASK."""
    j = json.loads(line)
    if "id" in j:
        j["id"] = MASK
    if isinstance(j.get("timings"), dict):
        j["timings"] = {k: MASK for k in j["timings"]}
    return j


def case_submit(bins, update):
    """ecgq submit --ordered: one JSON line per record (probs and embedding), exit 1 for the
    refused record, and the summary line on stderr."""
    with tempfile.TemporaryDirectory(prefix="ecgq-cli-") as logs, Cluster(bins, logs) as cluster:
        # --window 1: one job in flight, so batch_segments/batch_jobs do not depend on timing.
        code, out, err = run([bins["ecgq"], "--broker", cluster.endpoint, "submit", "--ordered",
                              "--window", "1", "--outputs", "probs,embedding"] + SUBMIT_RECORDS,
                             DATA)
        try:
            check_exit("submit", code, 1, out, err)
            got = [mask_result(line) for line in out.splitlines() if line.strip()]
            summary = [line for line in err.splitlines() if re.match(r"ecgq: \d+ records:", line)]
            summary = [re.sub(r"in [0-9.]+s \([0-9.]+ records/s\)",
                              f"in {MASK}s ({MASK} records/s)", s) for s in summary]
            path = os.path.join(EXPECTED, "submit.jsonl")
            summary_path = os.path.join(EXPECTED, "submit.stderr.txt")
            if update:
                write_text(path, "".join(json.dumps(j) + "\n" for j in got))
                write_text(summary_path, "".join(s + "\n" for s in summary))
                return
            want = [json.loads(line) for line in read_text(path).splitlines() if line.strip()]
            compare_values(got, want, "expected/submit.jsonl")
            compare_text("".join(s + "\n" for s in summary), read_text(summary_path),
                         "expected/submit.stderr.txt (summary line)")
        except Mismatch as e:
            raise Mismatch(f"{e}\n{cluster.log_text()}") from None


# ---------------------------------------------------------------- export (the compact model file)

BF16_TOLERANCE = 2e-3  # max |Δprob| of bf16 against fp32 (docs/performance.md, bf16 accuracy)


def sha256_file(path):
    with open(os.path.join(SOURCE, path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def export(bins, checkpoint, precision, out):
    code, out_text, err = run([bins["ecgq-worker"], "export", "--checkpoint", checkpoint,
                               "--precision", precision, "--out", out], SOURCE)
    check_exit(f"export {precision}", code, 0, out_text, err)
    return out_text


def infer(bins, checkpoint, out_dir, *extra, env=None):
    code, out, err = run([bins["ecgq-worker"], "infer", "--checkpoint", checkpoint, "--input",
                          INPUT, "--out", out_dir, "--threads", "1", *extra], SOURCE, env=env)
    check_exit(f"infer {checkpoint} {' '.join(extra)}", code, 0, out, err)
    return out


def max_diff(a_dir, b_dir, name):
    a, b = np.load(os.path.join(a_dir, name)), np.load(os.path.join(b_dir, name))
    if a.shape != b.shape:
        raise Mismatch(f"{name}: shape {a.shape} against {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def bf16_available(bins):
    code, _, err = run([bins["ecgq-worker"], "inspect", "--checkpoint", TINY_FINETUNED,
                        "--precision", "bf16"], SOURCE)
    if code != 0 and "AVX-512 BF16" in err:
        print("export_roundtrip: this CPU has no bf16 instructions; bf16 part skipped")
        return False
    return True


def roundtrip(bins, tmp, checkpoint, precision, outputs):
    """Exports `checkpoint`, runs both, compares; returns the export's output directory."""
    model = os.path.join(tmp, f"{os.path.basename(checkpoint)}.{precision}.ecgq")
    printed = export(bins, checkpoint, precision, model)
    sha = sha256_file(checkpoint)
    if f"source sha256 {sha}" not in printed:
        raise Mismatch(f"export did not name the source sha256 {sha}: {printed}")
    with open(model, "rb") as f:
        if f.read(8) != b"ECGQMODL":
            raise Mismatch("the model file does not start with the magic ECGQMODL")
    code, out, err = run([bins["ecgq-worker"], "inspect", "--checkpoint", model], SOURCE)
    check_exit("inspect export", code, 0, out, err)
    for want in (f"precision:    {precision}\n", f"source:       sha256 {sha}\n"):
        if want not in out:
            raise Mismatch(f"inspect of the export lacks {want!r}:\n{out}")
    # The source runs on the kernels the export runs on: in bf16 the pre-packed path also rounds
    # the positional conv's input and some attention products, which the ATen path does not.
    env = None if "pre-packed" in out else {**os.environ, "ECGQ_PACKED_WEIGHTS": "0"}
    src_dir, exp_dir = os.path.join(tmp, f"src_{precision}"), os.path.join(tmp, f"exp_{precision}")
    infer(bins, checkpoint, src_dir, "--precision", precision, env=env)
    line = infer(bins, model, exp_dir)
    if f" {precision}: " not in line:
        raise Mismatch(f"infer of the {precision} export printed {line!r}")
    for name in outputs:  # the same computation on the same weights
        d = max_diff(src_dir, exp_dir, name)
        if not d <= TOLERANCE:
            raise Mismatch(f"{precision} export {name}: max |diff| {d:.3g} > {TOLERANCE}")
    return exp_dir


def case_export_roundtrip(bins, update):
    """Model files of the tiny checkpoints give the source's outputs at their precision."""
    with tempfile.TemporaryDirectory(prefix="ecgq-cli-") as tmp:
        roundtrip(bins, tmp, TINY_PRETRAINED, "fp32", ["embedding.npy", "encoder_out.npy"])
        fp32_dir = roundtrip(bins, tmp, TINY_FINETUNED, "fp32",
                             ["probs.npy", "logits.npy", "embedding.npy"])
        for name in ("probs.npy", "logits.npy", "embedding.npy", "encoder_out.npy"):
            compare_npy(os.path.join(fp32_dir, name), os.path.join(EXPECTED, "infer", name),
                        f"export fp32 {name} vs expected")
        check_layouts(bins, tmp, fp32_dir)
        if bf16_available(bins):
            bf16_dir = roundtrip(bins, tmp, TINY_FINETUNED, "bf16", ["probs.npy", "embedding.npy"])
            d = max_diff(bf16_dir, fp32_dir, "probs.npy")
            if not d <= BF16_TOLERANCE:
                raise Mismatch(f"bf16 export probs against fp32: {d:.3g} > {BF16_TOLERANCE}")


def check_layouts(bins, tmp, packed_dir):
    """`export --layout packed` (the default, exported by roundtrip) and `--layout plain`: each
    says what it stored, inspect says how it loaded, and both give the same outputs."""
    packed = os.path.join(tmp, f"{os.path.basename(TINY_FINETUNED)}.fp32.ecgq")
    plain = os.path.join(tmp, "plain.ecgq")
    code, printed, err = run([bins["ecgq-worker"], "export", "--checkpoint", TINY_FINETUNED,
                              "--layout", "plain", "--out", plain], SOURCE)
    check_exit("export --layout plain", code, 0, printed, err)
    if "layers stored packed" in printed:
        raise Mismatch(f"export --layout plain says it stored packed layers: {printed}")
    for model, want, unwanted in ((packed, "layers stored packed for ", None),
                                  (plain, "model file v3, mapped", "stored packed")):
        code, out, err = run([bins["ecgq-worker"], "inspect", "--checkpoint", model], SOURCE)
        check_exit(f"inspect {model}", code, 0, out, err)
        if want not in out or ", mapped" not in out or (unwanted and unwanted in out):
            raise Mismatch(f"inspect {model}: wanted {want!r} and ', mapped':\n{out}")
    plain_dir = os.path.join(tmp, "exp_plain")
    infer(bins, plain, plain_dir)
    for name in ("probs.npy", "logits.npy", "embedding.npy"):
        d = max_diff(packed_dir, plain_dir, name)
        if not d <= TOLERANCE:
            raise Mismatch(f"{name}: packed and plain layouts differ by {d:.3g}")
    code, out, err = run([bins["ecgq-worker"], "export", "--checkpoint", TINY_FINETUNED,
                          "--layout", "blocked", "--out", plain], SOURCE)
    if code != 2 or "--layout" not in err:
        raise Mismatch(f"export --layout blocked: exit {code}, wanted 2 naming --layout:\n{err}")


def damaged_copy(src, dst, edit):
    with open(src, "rb") as f:
        data = bytearray(f.read())
    with open(dst, "wb") as f:
        f.write(edit(data))
    return dst


def expect_refusal(bins, argv, code, needles):
    got, out, err = run([bins["ecgq-worker"], *argv], SOURCE)
    check_exit(" ".join(argv[:3]), got, code, out, err)
    if len(err.strip().splitlines()) != 1 or not all(n in err for n in needles):
        raise Mismatch(f"{' '.join(argv)}: stderr should be one line naming {needles}:\n{err}")


def case_export_refusals(bins, update):
    """Damaged model files and conflicting settings are refused, each with its own reason."""
    with tempfile.TemporaryDirectory(prefix="ecgq-cli-") as tmp:
        good = os.path.join(tmp, "good.ecgq")
        export(bins, TINY_FINETUNED, "fp32", good)

        def set_version(d):
            d[8:12] = (4).to_bytes(4, "little")
            return d

        def flip_weight(d):
            d[8192] ^= 0x01  # a byte of the second tensor's page
            return d

        damaged = {
            "truncated": (lambda d: d[:-1000], ["truncated", "header says"]),
            "cut_header": (lambda d: d[:40], ["shorter than its header"]),
            "altered": (flip_weight, ["checksum mismatch", "altered"]),
            "version": (set_version, ["format version 4", "reads versions 1 to 3"]),
        }
        for name, (edit, needles) in damaged.items():
            path = damaged_copy(good, os.path.join(tmp, name + ".ecgq"), edit)
            for tool in ("infer", "inspect"):
                argv = [tool, "--checkpoint", path]
                if tool == "infer":
                    argv += ["--input", INPUT, "--out", os.path.join(tmp, "out")]
                expect_refusal(bins, argv, 1, [path] + needles)
        # An fp32 export asked to run bf16: a usage error naming both precisions.
        expect_refusal(bins, ["inspect", "--checkpoint", good, "--precision", "bf16"], 2,
                       ["precision bf16 was asked for", "fp32 export"])
        code, out, err = run([bins["ecgq-worker"], "export", "--checkpoint", good, "--out",
                              os.path.join(tmp, "again.ecgq")], SOURCE)
        check_exit("export of an export", code, 1, out, err)
        if "already a model file" not in err:
            raise Mismatch(f"export of an export: {err}")


CASES = {
    "infer": case_infer,
    "inspect_finetuned": inspect_case(TINY_FINETUNED, "inspect_finetuned.txt"),
    "inspect_pretrained": inspect_case(TINY_PRETRAINED, "inspect_pretrained.txt"),
    "submit": case_submit,
    "export_roundtrip": case_export_roundtrip,
    "export_refusals": case_export_refusals,
}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--bin-dir", required=True, help="directory with ecgq, ecgq-broker, "
                    "ecgq-worker (BUILD/bin)")
    ap.add_argument("--update", action="store_true",
                    help="rewrite the expected output instead of comparing")
    ap.add_argument("cases", nargs="*", metavar="CASE",
                    help="one of " + ", ".join(CASES) + " (default: all)")
    args = ap.parse_args(argv)
    for name in args.cases:
        if name not in CASES:
            ap.error(f"unknown case {name!r} (cases: {', '.join(CASES)})")
    bins = {b: os.path.join(os.path.abspath(args.bin_dir), b)
            for b in ("ecgq", "ecgq-broker", "ecgq-worker")}
    for path in bins.values():
        if not os.access(path, os.X_OK):
            print(f"cli_test: {path} is not built", file=sys.stderr)
            return 1
    os.makedirs(EXPECTED, exist_ok=True)
    failed = 0
    for name in args.cases or list(CASES):
        try:
            CASES[name](bins, args.update)
            print(f"cli_test {name}: {'updated' if args.update else 'ok'}")
        except (Mismatch, subprocess.TimeoutExpired) as e:
            failed += 1
            print(f"cli_test {name}: FAILED\n{e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
