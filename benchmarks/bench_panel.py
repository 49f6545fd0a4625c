"""The control panel's latencies, printed side by side with what the hub itself took.

    .venv/bin/python benchmarks/bench_panel.py [--repeats 5]

* Panel update latency: an experiment created from another thread (as a REST request would) until
  its row is in the panel's list (hub event -> widget trait), with the panel's timer off.
* In a real browser (Voila + Debian's Chromium through Playwright): click "Create and train" until the
  forecast figure is drawn, against the hub's own training time for that experiment (its status'
  started_at -> ended_at, read over the REST API of the same kernel).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from _common import free_port, table

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def panel_update_latency(repeats: int) -> list[float]:
    import experimenthub_widgets
    from experimenthub import ExperimentHub, datasets

    data = datasets.load("prophet_daily")
    out = []
    with tempfile.TemporaryDirectory() as home, ExperimentHub(home=home) as hub:
        app = experimenthub_widgets.panel(hub, namespace={}, health_interval=0)
        for i in range(repeats):
            name = f"rest{i}"
            start = time.perf_counter()
            thread = threading.Thread(target=hub.create_experiment, args=(name, "time_series", {"setup": {}}),
                                      kwargs={"data": data})
            thread.start()
            while name not in app.experiment_list.rows:
                time.sleep(0.0005)
            out.append(time.perf_counter() - start)
            thread.join()
            hub.wait(name, timeout=300)
        app.close()
    return out


def click_to_forecast(repeats: int) -> list[tuple[float, float]]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    home = tempfile.mkdtemp()
    voila = subprocess.Popen([str(Path(sys.executable).with_name("voila")), str(ROOT / "notebooks" / "dashboard.ipynb"),
                              f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, EXPERIMENTHUB_HOME=home), start_new_session=True)
    results = []
    try:
        time.sleep(3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
                page.wait_for_selector(".eh-create-button", timeout=180_000)
                api = re.search(r"http://127\.0\.0\.1:\d+", page.locator(".eh-server-url").inner_text()).group(0)
                time.sleep(8)  # let the new kernel's warm-up finish, as a user reading the page would
                start = time.perf_counter()
                page.locator(".eh-create-button").first.click()
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.eh-figure.js-plotly-plot .legendtext')]"
                    ".some(e => e.textContent.includes('forecast'))", timeout=240_000)
                shown = time.perf_counter() - start
                name = next(iter(requests.get(api + "/experiments", timeout=10).json()))
                status = requests.get(f"{api}/{name}/status", timeout=10).json()
                trained = (dt.datetime.fromisoformat(status["ended_at"])
                           - dt.datetime.fromisoformat(status["started_at"])).total_seconds()
                results.append((shown, trained))
                page.close()
            browser.close()
    finally:
        os.killpg(voila.pid, 15)
        voila.wait(timeout=15)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    updates = panel_update_latency(args.repeats)
    print(table(["panel update: experiment created elsewhere -> its row", "median ms", "max ms"],
                [["hub event -> widget trait (timer off)", statistics.median(updates) * 1000, max(updates) * 1000]]))
    print()
    clicks = click_to_forecast(max(2, args.repeats // 2))
    shown = statistics.median(c[0] for c in clicks)
    trained = statistics.median(c[1] for c in clicks)
    print(table(["in Chromium (Voila)", "median s"], [
        ["click 'Create and train' -> forecast figure drawn", shown],
        ["  the hub's own training time (started_at -> ended_at)", trained],
        ["  ratio", shown / trained],
    ]))


if __name__ == "__main__":
    main()
