"""The MLflow runs of an experiment (``hub.runs(name)``, newest first) and loading one of them
(``hub.load(name, run_id)``, the call behind ``POST /experiments/{name}/load``)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .background import Coalescer, Runner, describe_error
from .style import esc, fmt_number

#: metrics shown in a run's label, the first one present
KEY_METRICS = ("mape", "mae", "anomaly_rate")


def run_label(run: Any) -> str:
    started = dt.datetime.fromtimestamp(run.start_time).strftime("%Y-%m-%d %H:%M:%S") if run.start_time else "?"
    name = run.tags.get("mlflow.runName") or run.run_id[:8]
    metric = next((f" · {k} {fmt_number(run.metrics[k])}" for k in KEY_METRICS if k in run.metrics), "")
    return f"{started} · {name} · {run.status}{metric}"


class RunsPane(w.VBox):
    """``picker`` (Dropdown of run ids, ``<prefix>-picker``), ``load_button`` (``<prefix>-load-button``;
    for the selected experiment the classes are ``eh-runs-picker`` and ``eh-load-button``)."""

    def __init__(self, hub: Any, runner: Runner, on_loaded: Callable[[str, str], None], prefix: str = "eh-runs",
                 load_class: str = "eh-load-button") -> None:
        self._hub, self._runner, self._on_loaded = hub, runner, on_loaded
        self._lock = threading.Lock()
        self._name: str | None = None
        self.runs: list[Any] = []
        self.picker = w.Dropdown(options=[], description="Run", layout=w.Layout(width="100%", max_width="560px"))
        self.picker.add_class(f"{prefix}-picker")
        self.load_button = w.Button(description="Load this run", icon="upload", disabled=True,
                                    tooltip="Rebuild the experiment from this MLflow run (hub.load)")
        self.load_button.add_class(load_class)
        self.refresh_button = w.Button(icon="refresh", tooltip="Ask MLflow again", layout=w.Layout(width="36px"))
        self.refresh_button.add_class(f"{prefix}-refresh")
        self.table = w.HTML()
        self.table.add_class(f"{prefix}-table")
        self.load_button.on_click(self._load)
        self.refresh_button.on_click(lambda _: self.refresh())
        self._fetcher = Coalescer("runs", self._fetch, self._failed)
        super().__init__([w.HBox([self.picker, self.refresh_button, self.load_button],
                                 layout=w.Layout(align_items="center", width="100%", flex_flow="row wrap")),
                          self.table], layout=w.Layout(width="100%"))

    def set_experiment(self, name: str | None) -> None:
        with self._lock:
            self._name = name
        self.runs = []
        self.picker.options = []
        self.load_button.disabled = True
        self.table.value = "" if name else '<span class="eh-muted">Select an experiment.</span>'
        if name:
            self.refresh()

    def refresh(self) -> None:
        if self._name:
            self._fetcher.request()

    @property
    def busy(self) -> bool:
        return self._fetcher.busy

    def _fetch(self) -> None:
        name = self._name
        if not name:
            return
        runs = sorted(self._hub.runs(name), key=lambda r: r.start_time or 0, reverse=True)
        with self._lock:
            if name != self._name:
                return
        self.runs = runs
        options = [(run_label(run), run.run_id) for run in runs]
        current = self.picker.value
        if list(self.picker.options) != options:
            self.picker.options = options
        ids = [run.run_id for run in runs]
        wanted = current if current in ids else (ids[0] if ids else None)  # else the newest
        if self.picker.value != wanted:
            self.picker.value = wanted
        self.load_button.disabled = not runs
        if not runs:
            self.table.value = f'<span class="eh-muted">No MLflow runs recorded for {esc(name)} yet.</span>'
            return
        rows = "".join(
            f"<tr><td>{esc(run_label(run).split(' · ')[0])}</td><td>{esc(run.tags.get('mlflow.runName', ''))}</td>"
            f"<td>{esc(run.status)}</td><td><code>{esc(run.run_id)}</code></td>"
            f"<td>{esc(', '.join(f'{k} {fmt_number(v)}' for k, v in sorted(run.metrics.items())))}</td></tr>"
            for run in runs[:20])
        self.table.value = ('<table class="eh-table"><tr><th>started</th><th>run</th><th>status</th><th>run id</th>'
                            f"<th>metrics</th></tr>{rows}</table>")

    def _failed(self, exc: BaseException) -> None:
        self.table.value = f'<span class="eh-health-detail">{esc(describe_error(exc))}</span>'

    def _load(self, _button: Any = None) -> None:
        name, run_id = self._name, self.picker.value
        if not name or not run_id:
            return
        self._runner.run("Loading…", lambda: self._hub.load(name, run_id),
                         done=lambda experiment: self._on_loaded(name, run_id), button=self.load_button)

    def stop(self) -> None:
        """Fetch nothing more (the panel is closing); the widgets stay until closed."""
        self._fetcher.close()

    def close(self) -> None:
        self.stop()
        super().close()
