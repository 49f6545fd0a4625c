"""The selected experiment's sweep: fit a grid of parameter sets, rank them, keep the best.

``hub.sweep(name, params, metric)`` (the call behind ``POST /{name}/sweep``) starts the sweep and
returns at once; the experiment is then ``training`` with stage ``sweep k/N`` (candidates done of
all) and its progress, which the Overview shows as for any training, and ``stop_training`` (the
Stop button) stops every candidate. When it ends, the candidates (``hub.sweep_candidates(name)``,
best first) are read in a background thread (while the control is shown: it folds away in the
Overview). The grid is JSON (a dict of lists, or a list of
parameter dicts), prefilled with a small grid for the model type.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from experimenthub.errors import ExperimentNotFound

from .background import Coalescer, Runner, WhenShown, describe_error
from .style import esc, fmt_number

#: a first grid per model type: a few values around the default of the parameter that matters most
GRIDS: dict[str, dict[str, list[Any]]] = {
    "Prophet": {"changepoint_prior_scale": [0.01, 0.1, 0.5]},
    "PCA": {"n_components": [0.8, 0.9, 0.95]},
    "IsolationForest": {"n_estimators": [50, 100, 200]},
    "EllipticEnvelope": {"confidence": [0.95, 0.99, 0.999]},
    "LocalOutlierFactor": {"n_neighbors": [10, 20, 40]},
}
BUSY = ("created", "training")


def default_grid(cls: Any, model_type: str | None) -> dict[str, list[Any]]:
    """The grid offered first: a known one for the model type, else half, once and twice the default
    of the model's first numeric parameter; empty when there is none."""
    if model_type in GRIDS:
        return {k: list(v) for k, v in GRIDS[model_type].items()}
    try:
        specs = cls.model_parameters(model_type) if cls is not None and model_type else []
    except Exception:
        specs = []
    for spec in specs:
        default = spec.default
        if spec.kind == "int" and isinstance(default, int) and not isinstance(default, bool) and default > 1:
            return {spec.name: [max(1, default // 2), default, default * 2]}
        if spec.kind == "float" and isinstance(default, int | float) and not isinstance(default, bool) and default:
            return {spec.name: [default / 2, default, default * 2]}
    return {}


class SweepControl(w.VBox):
    """``grid`` (Textarea, ``eh-sweep-grid``), ``metric`` (Text, ``eh-sweep-metric``; empty: the
    type's default), ``button`` (``eh-sweep-button``), ``status`` (HTML, ``eh-sweep-status``: the
    sweep's progress, or its result), ``candidates`` (HTML, ``eh-sweep-candidates``: the latest
    sweep's candidates, best first). ``candidates_of`` names the experiment they belong to."""

    def __init__(self, hub: Any, runner: Runner, after: Callable[[], None],
                 on_error: Callable[[str], None]) -> None:
        self._hub, self._runner, self._after, self._on_error = hub, runner, after, on_error
        self._lock = threading.Lock()
        self._name: str | None = None
        self._model_type: str | None = None  # the model type whose grid the editor was filled with
        self._sweeping: str | None = None  # the experiment seen sweeping: read its candidates when it ends
        self.candidates_of: str | None = None
        self.grid = w.Textarea(value="{}", rows=3, layout=w.Layout(width="100%", max_width="560px"),
                               placeholder='{"param": [value, value, ...]}: every combination is a candidate')
        self.grid.add_class("eh-sweep-grid")
        self.metric = w.Text(value="", description="Metric", placeholder="default: the type's",
                             tooltip="rank candidates by this metric; empty: the type's default (time_series: "
                                     "cv_mape out of sample; fault_detection with a label: holdout_f1)",
                             layout=w.Layout(width="260px"))
        self.metric.add_class("eh-sweep-metric")
        self.button = w.Button(description="Sweep", icon="sliders", layout=w.Layout(width="auto", min_width="96px"),
                               tooltip="Fit one candidate per parameter set through the queue, rank them, keep the "
                                       "best as the experiment's model (hub.sweep); Stop stops them all")
        self.button.add_class("eh-sweep-button")
        self.status = w.HTML()
        self.status.add_class("eh-sweep-status")
        self.candidates = w.HTML()
        self.candidates.add_class("eh-sweep-candidates")
        self.button.on_click(self._sweep)
        self._reader = Coalescer("sweep-candidates", self._fetch, self._failed)
        self.updates = WhenShown(self._reader)
        super().__init__([
            w.HTML('<span class="eh-muted">Parameter grid (JSON: a dict of lists, or a list of parameter '
                   "dicts)</span>"),
            self.grid,
            w.HBox([self.metric, self.button], layout=w.Layout(align_items="center", grid_gap="8px")),
            self.status, self.candidates,
        ], layout=w.Layout(width="100%"))
        self.add_class("eh-sweep")

    # -- following the selected experiment ---------------------------------------------------------
    def set_experiment(self, name: str | None, model_type: str | None, cls: Any) -> None:
        """A new selection: a grid for its model type (kept when the type is the same) and its
        last sweep's candidates, read in the background."""
        with self._lock:
            self._name = name
            self._sweeping = None
        self.status.value = ""
        self.candidates.value = ""
        self.candidates_of = None
        if name is None:
            return
        if model_type != self._model_type:
            self._model_type = model_type
            self.grid.value = json.dumps(default_grid(cls, model_type))
        self.refresh()

    def refresh(self) -> None:
        """Read the latest sweep's candidates again (a background thread; once shown, when hidden)."""
        if self._name is not None:
            self.updates.request()

    def show(self, shown: bool) -> None:
        self.updates.show(shown)

    @property
    def busy(self) -> bool:
        return self._reader.busy

    def show_status(self, status: Any) -> None:
        """The experiment's status (any thread): progress while it sweeps; when a sweep it was seen
        running ends, its candidates are read."""
        stage = status.stage or ""
        if status.state in BUSY and stage.startswith("sweep"):
            with self._lock:
                self._sweeping = status.name
            done, _, total = stage.removeprefix("sweep").strip().partition("/")
            text = (f"Sweeping: {done} of {total} candidates done ({round(100 * float(status.progress or 0))} %)"
                    if total else f"Sweeping ({round(100 * float(status.progress or 0))} %)")
            self._set_status(f'<span class="eh-muted eh-sweep-running">{esc(text)}</span>')
            return
        with self._lock:
            ended = self._sweeping == status.name and status.state not in BUSY
            if ended:
                self._sweeping = None
        if ended:
            outcome = {"ready": "Sweep done: the best candidate is the experiment's model now",
                       "failed": f"Sweep failed: {status.error or ''}", "stopped": "Sweep stopped"}
            self._set_status(f'<span class="eh-sweep-ended">{esc(outcome.get(status.state, status.state))}</span>')
            self.refresh()
        disabled = status.state != "ready"
        if not self.button.description.endswith("…") and self.button.disabled != disabled:
            self.button.disabled = disabled

    def _set_status(self, value: str) -> None:
        if self.status.value != value:
            self.status.value = value

    # -- sweeping ----------------------------------------------------------------------------------
    def _sweep(self, _: Any = None) -> None:
        name = self._name
        if name is None:
            return
        try:
            params = json.loads(self.grid.value)
        except ValueError as exc:
            self._on_error(f"The parameter grid is not valid JSON: {exc}")
            return
        metric = self.metric.value.strip() or None

        def started(_: Any) -> None:
            with self._lock:  # the sweep runs (state training) when hub.sweep returns: its end reads the
                self._sweeping = name  # candidates, even if it ended before any status showed it
            if self._name == name:
                self.candidates.value = ""  # the last sweep's candidates would read as this one's

        self._runner.run("Starting…", lambda: self._hub.sweep(name, params, metric), done=started,
                         button=self.button, after=self._after)

    # -- candidates (background thread) ------------------------------------------------------------
    def _fetch(self) -> None:
        name = self._name
        if name is None:
            return
        try:
            frame = self._hub.sweep_candidates(name)
        except ExperimentNotFound:
            return
        if name != self._name:
            return
        self.candidates_of = name
        if not len(frame):
            self.candidates.value = f'<span class="eh-muted">{esc(name)} has not been swept yet.</span>'
            return
        params = [c for c in frame.columns if str(c).startswith("params.")]
        metric = self.metric.value.strip()
        ranked = [m for m in (metric, "cv_mape", "holdout_f1", "cv_mae", "mape", "f1") if m and m in frame.columns]
        shown = list(dict.fromkeys(ranked))[:2]
        head = "".join(f"<th>{esc(p.removeprefix('params.'))}</th>" for p in params) + \
            "".join(f"<th>{esc(m)}</th>" for m in shown)
        body = []
        for rank, values in enumerate(frame.to_dict(orient="records")):
            cells = "".join(f"<td>{esc(_plain(values.get(p)))}</td>" for p in params) + \
                "".join(f"<td>{esc(_plain(values.get(m)))}</td>" for m in shown)
            best = ' class="eh-sweep-best"' if rank == 0 else ""
            body.append(f"<tr{best}><td>{_plain(values.get('candidate'))}</td>{cells}"
                        f"<td>{esc(_plain(values.get('status')))}</td></tr>")
        self.candidates.value = (f'<div style="font-weight:600;margin-top:6px">Candidates of the latest sweep, '
                                 f'best first</div><table class="eh-table"><tr><th>#</th>{head}<th>status</th></tr>'
                                 f"{''.join(body)}</table>")

    def _failed(self, exc: BaseException) -> None:
        self.candidates.value = f'<span class="eh-health-detail">{esc(describe_error(exc))}</span>'

    def stop(self) -> None:
        self._reader.close()


def _plain(value: Any) -> str:
    if value is None:
        return "–"
    try:
        import pandas as pd

        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        pass
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return fmt_number(value)
