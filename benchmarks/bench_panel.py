"""The control panel's latencies, printed side by side with what the hub itself took.

    .venv/bin/python benchmarks/bench_panel.py [--repeats 5] [--many 500] [--no-browser]

* Panel update latency: an experiment created from another thread (as a REST request would) until
  its row is in the panel's list (hub event -> widget trait), with the panel's timer off.
* Many experiments (``--many``, default 500; one training held, the rest queued behind it with
  ``max_trainings=1``, so nothing is fitted or logged): the time one render of the list takes
  (median wall and CPU time of the rendering thread: snapshot of every status, rows, traits), and
  two bursts: the experiments created from 4 threads (about two real hub events each), and 1000
  ``progress`` events published from 4 threads as many trainings would. For each burst: events,
  renders, the time the publishing threads spent (every subscriber's callbacks included), and the
  time from the burst's start until the list had drawn its last state.
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


def _types():
    """Two cheap experiment types: Quick fits a mean in a blink; Held keeps its training slot."""
    import pandas as pd

    from experimenthub import ExperimentType
    from experimenthub.config import parse_common
    from experimenthub.experiments.base import Evaluation

    class Quick(ExperimentType):
        type_name, model_types, retrain_metrics = "quick", ("Mean",), ()
        isolation = "thread"  # no worker process: hundreds of experiments cost nothing but their rows
        figure_names = eda_figure_names = ()

        @classmethod
        def parse_config(cls, config):
            return parse_common(config, cls.model_types)

        def validate_data(self, frame):
            return frame

        def fit(self, data, progress):
            self.model = float(data["y"].mean())
            return Evaluation(data.assign(yhat=self.model), {"mean": self.model})

        def predict(self, data):
            return pd.DataFrame({"yhat": [self.model]})

        def figures(self, train, evaluation, predictions):
            return {}

        def save_model(self, path):
            pass

        def load_model(self, path):
            pass

    class Held(Quick):
        type_name = "held"
        release = threading.Event()

        def fit(self, data, progress):
            while not self.release.wait(5):  # rare progress: a quiet hub between the bursts
                progress("held", 0.5)
            return super().fit(data, progress)

    return Quick, Held


def _in_threads(works: list) -> None:
    """Run each of ``works`` in a thread of its own, all at once; return when all are done."""
    threads = [threading.Thread(target=work) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _settle(app, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while app.experiment_list.pending:
        if time.monotonic() > deadline:
            raise TimeoutError("the experiment list kept redrawing")
        time.sleep(0.01)


def many_experiments(count: int, repeats: int) -> dict[str, object]:
    """Render time of the list with ``count`` experiments, and the two event bursts."""
    import pandas as pd

    import experimenthub_widgets
    from experimenthub import ExperimentHub
    from experimenthub.events import Event
    from experimenthub.settings import Settings

    quick, held = _types()
    data = pd.DataFrame({"y": [1.0, 2.0, 6.0]})
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as home:
        hub = ExperimentHub(Settings.from_env(home=home, max_trainings=1))
        hub.register_experiment_type("quick", quick)
        hub.register_experiment_type("held", held)
        events = []
        counter = hub.subscribe(events.append)
        app = experimenthub_widgets.panel(hub, namespace={}, health_interval=0)
        listing = app.experiment_list
        hub.create_experiment("held", "held", {}, data=data)
        _settle(app)

        # burst 1: the experiments created from 4 threads
        names = [f"many-{i:04d}" for i in range(count - 1)]
        parts = [names[i::4] for i in range(4)]
        events.clear()
        renders = listing.renders
        start = time.perf_counter()
        _in_threads([lambda part=part: [hub.create_experiment(n, "quick", {}, data=data) for n in part]
                     for part in parts])
        published = time.perf_counter() - start
        _settle(app)
        assert len(listing.rows) == count, (len(listing.rows), count)
        out["created"] = (len(events), listing.renders - renders, published, listing.rendered_at - start)

        # one render, in this thread, with nothing else drawing
        wall, cpu = [], []
        for _ in range(repeats):
            started, started_cpu = time.perf_counter(), time.thread_time()
            listing.render()
            wall.append(time.perf_counter() - started)
            cpu.append(time.thread_time() - started_cpu)
        out["render"] = (statistics.median(wall), statistics.median(cpu), max(wall), len(listing.table.rows))

        # burst 2: 1000 progress events, through the hub's own publish path, from 4 threads
        everyone = ["held", *names]
        burst = [Event("progress", everyone[i % len(everyone)], {"stage": "fitting", "progress": 0.5})
                 for i in range(1000)]
        events.clear()
        renders = listing.renders
        start = time.perf_counter()
        _in_threads([lambda part=part: hub._publish(part) for part in (burst[i::4] for i in range(4))])
        published = time.perf_counter() - start
        _settle(app)
        out["progress"] = (len(events), listing.renders - renders, published, listing.rendered_at - start)

        counter.close()
        app.close()
        for name in names:
            hub.stop_training(name)
        hub.stop_training("held")
        held.release.set()
        hub.close()
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
        deadline = time.monotonic() + 120  # a loaded machine takes more than a few seconds to start Voila
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api", timeout=2).status_code < 500:
                    break
            except requests.RequestException:
                pass
            if voila.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("voila did not start (exited, or no answer within 120 s)")
            time.sleep(0.3)
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
                try:
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('.eh-figure.js-plotly-plot .legendtext')]"
                        ".some(e => e.textContent.includes('forecast'))", timeout=240_000)
                except Exception:
                    (ROOT / "test-artifacts").mkdir(exist_ok=True)
                    page.screenshot(path=str(ROOT / "test-artifacts" / "bench-panel-failure.png"), full_page=True)
                    print("no forecast drawn; the hub said:", requests.get(api + "/experiments", timeout=10).text,
                          file=sys.stderr)
                    raise
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
    parser.add_argument("--many", type=int, default=500, help="experiments for the list measurements")
    parser.add_argument("--no-browser", action="store_true", help="skip the Voila + Chromium measurement")
    args = parser.parse_args()
    updates = panel_update_latency(args.repeats)
    print(table(["panel update: experiment created elsewhere -> its row", "median ms", "max ms"],
                [["hub event -> widget trait (timer off)", statistics.median(updates) * 1000, max(updates) * 1000]]))
    print()
    many = many_experiments(args.many, max(20, args.repeats * 4))
    wall, cpu, worst, drawn = many["render"]
    print(table([f"experiment list, {args.many} experiments", "median ms", "CPU ms", "max ms"],
                [[f"render: every status, {drawn} rows drawn (median of {max(20, args.repeats * 4)})",
                  wall * 1000, cpu * 1000, worst * 1000]]))
    print()
    rows = []
    for key, label in (("created", f"{args.many - 1} experiments created from 4 threads"),
                       ("progress", "1000 progress events from 4 threads")):
        count, renders, published, drawn_after = many[key]
        rows.append([label, count, renders, published * 1000, drawn_after * 1000])
    print(table(["burst of hub events", "events", "renders", "publishing ms", "last state drawn after ms"], rows))
    print()
    if args.no_browser:
        return
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
