#!/usr/bin/python3
"""The gateway's web page (/ui) in a real browser: headless Chromium (Debian's chromium,
chromium-driver, python3-selenium) loads it from a real ecgq-gateway on 127.0.0.1 in front of a
real broker and worker (the tiny demo model), analyses a bundled record and an uploaded one, and
checks the DOM: 12 lead traces on the ECG grid, one bar per label, the saliency overlay, the
timings. A screenshot of each is kept as a test artifact (--artifacts DIR).

    /usr/bin/python3 tests/ui/test_ui.py --bin-dir BUILD/bin --artifacts BUILD/test-artifacts

Exits 0 with "SKIP: ..." when Chromium or Selenium is not installed (scripts/install-deps
installs them)."""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "data/models/demo-random-weights-tiny.pt")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def http_ok(port, path):
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def check_page(driver, name, artifacts, expect_labels):
    from selenium.webdriver.common.by import By
    wait_for(lambda: driver.execute_script("return document.body.dataset.state") == "done"
             or "error" in driver.find_element(By.ID, "status").get_attribute("class"),
             120, f"the {name} result")
    status = driver.find_element(By.ID, "status")
    assert "error" not in status.get_attribute("class"), f"{name}: {status.text}"
    leads = driver.find_elements(By.CSS_SELECTOR, "#leads svg.lead")
    assert len(leads) == 12, f"{name}: {len(leads)} lead traces"
    for svg in leads:
        assert svg.find_elements(By.CSS_SELECTOR, "path.trace"), f"{name}: a lead without a trace"
        assert svg.find_elements(By.CSS_SELECTOR, "line.grid-major"), f"{name}: no ECG grid"
    names = [svg.get_attribute("data-lead") for svg in leads]
    bars = driver.find_elements(By.CSS_SELECTOR, "#probs .bar-row")
    assert len(bars) == expect_labels, f"{name}: {len(bars)} bars for {expect_labels} labels"
    values = [float(b.find_element(By.CSS_SELECTOR, ".value").text) for b in bars]
    assert values == sorted(values, reverse=True), f"{name}: bars not sorted"
    assert driver.find_elements(By.CSS_SELECTOR, "#probs .threshold"), f"{name}: no 0.5 line"
    overlay = driver.find_elements(By.CSS_SELECTOR, "#leads rect.saliency")
    assert overlay, f"{name}: no saliency overlay"
    timings = driver.find_element(By.ID, "timings").text
    assert "infer" in timings and ("warm" in timings or "cold" in timings), timings
    path = os.path.join(artifacts, f"ui-{name}.png")
    driver.save_screenshot(path)
    print(f"ui {name}: leads {names}, {len(bars)} bars, {len(overlay)} saliency steps, "
          f"screenshot {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--artifacts", required=True)
    a = ap.parse_args()
    chromium = shutil.which("chromium")
    driver_bin = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
    except ImportError:
        driver_bin = None
    if not chromium or not driver_bin:
        print("SKIP: chromium, chromium-driver or python3-selenium is not installed")
        return 0
    os.makedirs(a.artifacts, exist_ok=True)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    http = free_port()
    logs = tempfile.mkdtemp()
    procs = []

    def spawn(argv, log):
        with open(os.path.join(logs, log), "wb") as f:
            procs.append(subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT))

    driver = None
    try:
        spawn([os.path.join(a.bin_dir, "ecgq-broker"), "--bind", endpoint], "broker.log")
        spawn([os.path.join(a.bin_dir, "ecgq-worker"), "serve", "--broker", endpoint,
               "--checkpoint", DEMO, "--threads", "1"], "worker.log")
        spawn([os.path.join(a.bin_dir, "ecgq-gateway"), "--broker", endpoint,
               "--bind", f"127.0.0.1:{http}", "--ui-records", os.path.join(ROOT, "data/ecg")],
              "gateway.log")
        wait_for(lambda: http_ok(http, "/health"), 120, "the gateway's /health")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1800",
                    "--disable-dev-shm-usage"):
            options.add_argument(arg)
        from selenium.webdriver.chrome.service import Service
        driver = webdriver.Chrome(service=Service(executable_path=driver_bin), options=options)
        driver.get(f"http://127.0.0.1:{http}/ui")
        wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#record option")) > 0, 30,
                 "the bundled records in the page")
        Select(driver.find_element(By.ID, "record")).select_by_value("1.hea")
        driver.find_element(By.ID, "run-bundled").click()
        check_page(driver, "bundled", a.artifacts, 17)
        # An upload: the WFDB pair of the same record, through the file input.
        driver.execute_script("document.body.dataset.state = ''")
        files = [os.path.join(ROOT, "data/ecg", f) for f in ("1.hea", "1.dat")]
        driver.find_element(By.ID, "files").send_keys("\n".join(files))
        driver.find_element(By.ID, "run-upload").click()
        check_page(driver, "upload", a.artifacts, 17)
        return 0
    except AssertionError as e:
        print(f"FAIL: {e}")
        for log in os.listdir(logs):
            print(f"--- {log}\n" + open(os.path.join(logs, log), errors="replace").read()[-3000:])
        return 1
    finally:
        if driver is not None:
            driver.quit()
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
