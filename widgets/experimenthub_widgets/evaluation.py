"""The Evaluation tab: how the selected experiment's model does on data it was not fitted on.

``hub.evaluation(name)`` (the call behind ``GET /{name}/evaluation``) in a background thread, only
while the tab is shown (an experiment restored from MLflow is loaded on first use):

* a backtest by horizon step (``time_series``: one row per fold and step with ``y``, ``yhat`` and
  the seasonal-naive ``baseline``): a Plotly bar chart of the mean absolute error at each step, the
  model beside the baseline, over all folds; the ``cv_*`` metrics beside ``baseline_cv_*``, and
  ``cv_rel_mae`` in words ("53 % worse than naive");
* confusion counts (``fault_detection``: ``label``, ``no_alarm``, ``alarm``): the counts and the
  ``holdout_*`` metrics;
* no ``evaluate`` section in the config: the hub's message, which says how to add one.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from experimenthub.errors import Busy, ExperimentNotFound, NotReady

from .background import Coalescer, WhenShown, describe_error
from .figures import draw, figure_or_note
from .style import esc, fmt_number

#: the cv_* metrics shown beside their baseline_cv_* counterpart, in this order
CV_METRICS = ("mae", "rmse", "mape", "smape", "mase", "coverage")
HOLDOUT_METRICS = ("precision", "recall", "f1", "false_alarm_rate", "detection_rate", "detection_delay", "rows")
BASELINE = "seasonal naive"


def relative_words(rel_mae: float) -> str:
    """``cv_rel_mae`` (the model's MAE over the naive one's) in words: "12 % better than naive"."""
    change = round(abs(1 - rel_mae) * 100)
    if change == 0:
        return "as good as naive"
    return f"{change} % {'better' if rel_mae < 1 else 'worse'} than naive"


def error_by_step(frame: Any) -> Any:
    """Mean absolute error per horizon step over the folds: columns ``model`` and ``baseline``."""
    errors = frame.assign(model=(frame["y"] - frame["yhat"]).abs(), baseline=(frame["y"] - frame["baseline"]).abs())
    return errors.groupby("step")[["model", "baseline"]].mean()


class EvaluationPane(w.VBox):
    """``summary`` (HTML, ``eh-eval-summary``: what the evaluation says in words, or why there is
    none), ``figure`` (FigureWidget, ``eh-eval-figure``: error by horizon step, model and baseline),
    ``table`` (HTML, ``eh-eval-table``: metrics, or the confusion counts). ``shown`` is the
    experiment whose evaluation the widgets show. The figure is made when the tab is first shown."""

    def __init__(self, hub: Any, on_error: Any) -> None:
        self._hub, self._on_error = hub, on_error
        self._lock = threading.Lock()
        self._name: str | None = None
        self.shown: str | None = None
        self.summary = w.HTML()
        self.summary.add_class("eh-eval-summary")
        self.figure: Any = None  # made when the tab is first shown (plotly.js travels with it)
        # the figure joins the page once drawn (a FigureWidget whose view was made inside a hidden box
        # stays blank when the box is shown: its view is made anew, from the drawn figure, instead)
        self.figure_box = w.Box([], layout=w.Layout(width="100%"))
        self.table = w.HTML()
        self.table.add_class("eh-eval-table")
        self._fetcher = Coalescer("evaluation", self._fetch, self._failed)
        self.updates = WhenShown(self._fetcher)
        super().__init__([self.summary, self.figure_box, self.table], layout=w.Layout(width="100%", padding="4px"))
        self.add_class("eh-evaluation")

    # -- what to show --------------------------------------------------------------------------
    def set_experiment(self, name: str | None) -> None:
        with self._lock:
            self._name = name
        self.shown = None
        self._hide_figure()
        self.table.value = ""
        self.summary.value = ('<span class="eh-muted">Select an experiment.</span>' if name is None else
                              '<span class="eh-muted">loading the evaluation…</span>')
        self.refresh()

    def refresh(self) -> None:
        """Read the evaluation again (when the tab is shown; else once it is)."""
        if self._name is not None:
            self.updates.request()

    def show(self, shown: bool) -> None:
        """The tab became visible (or hidden); the kernel's thread (widgets are made here)."""
        if shown and self.figure is None:
            self.figure = figure_or_note("eh-eval-figure")
        self.updates.show(shown)

    @property
    def busy(self) -> bool:
        return self._fetcher.busy

    # -- fetching (background thread) ------------------------------------------------------------
    def _fetch(self) -> None:
        name = self._name
        if name is None:
            return
        try:
            status = self._hub.status(name)
            frame = self._hub.evaluation(name)
        except ExperimentNotFound:
            return
        except (NotReady, Busy) as exc:  # no evaluate section, no model yet, training: words, not an error
            if name == self._name:
                self._hide_figure()
                self.table.value = ""
                self.summary.value = f'<div class="eh-muted eh-eval-missing">{esc(describe_error(exc))}</div>'
                self.shown = name
            return
        if name != self._name:
            return  # another experiment was selected meanwhile; its fetch is queued already
        columns = set(frame.columns)
        if {"step", "y", "yhat", "baseline"} <= columns:
            self._backtest(frame, status)
        elif {"label", "no_alarm", "alarm"} <= columns:
            self._confusion(frame, status)
        else:  # a type of its own: its table as it is
            self._hide_figure()
            self.summary.value = f'<span class="eh-muted">{len(frame)} rows of out-of-sample evaluation</span>'
            self.table.value = frame.head(50).to_html(index=False, classes="eh-table", border=0,
                                                      float_format=lambda v: f"{v:.4g}")
        self.shown = name

    def _backtest(self, frame: Any, status: Any) -> None:
        import plotly.graph_objects as go

        by_step = error_by_step(frame)
        folds, steps = frame["fold"].nunique() if "fold" in frame else 1, len(by_step)
        model = status.model_type or "model"
        figure = go.Figure([
            go.Bar(x=list(by_step.index), y=list(by_step["model"]), name=f"{model} (model)", marker_color="#0969da"),
            go.Bar(x=list(by_step.index), y=list(by_step["baseline"]), name=f"{BASELINE} (baseline)",
                   marker_color="#8c959f"),
        ], layout={"barmode": "group", "height": 360, "margin": {"t": 50, "r": 20, "b": 50, "l": 60},
                   "title": {"text": f"Mean absolute error by horizon step, over {folds} "
                                     f"fold{'' if folds == 1 else 's'}"},
                   "xaxis": {"title": {"text": "horizon step (rows ahead)"}, "dtick": 1 if steps <= 30 else None},
                   "yaxis": {"title": {"text": "mean absolute error"}},
                   "legend": {"orientation": "h", "y": -0.2}})
        if self.figure is None:  # never shown (a direct call): nothing to draw into
            return
        draw(self.figure, figure)
        if self.figure_box.children != (self.figure,):
            self.figure_box.children = (self.figure,)
        metrics = status.metrics or {}
        rel = metrics.get("cv_rel_mae")
        words = (f"Out of sample ({folds} fold{'' if folds == 1 else 's'} of {steps} steps): the model's mean "
                 f"absolute error is <b>{esc(relative_words(rel))}</b> (cv_rel_mae {fmt_number(rel)}; the "
                 f"{BASELINE} forecast repeats the value one season back)." if isinstance(rel, float) else
                 f"Out of sample: {folds} fold{'' if folds == 1 else 's'} of {steps} steps.")
        self.summary.value = f'<div class="eh-eval-words">{words}</div>'
        rows = [(base, metrics.get(f"cv_{base}"), metrics.get(f"baseline_cv_{base}")) for base in CV_METRICS
                if f"cv_{base}" in metrics or f"baseline_cv_{base}" in metrics]
        body = "".join(f"<tr><td>cv_{esc(base)}</td><td>{_cell(ours)}</td><td>{_cell(naive)}</td></tr>"
                       for base, ours, naive in rows)
        self.table.value = (f'<table class="eh-table"><tr><th>metric</th><th>{esc(model)}</th>'
                            f"<th>{BASELINE}</th></tr>{body}</table>" if rows else "")

    def _confusion(self, frame: Any, status: Any) -> None:
        self._hide_figure()
        metrics = status.metrics or {}
        names = {0: "normal (0)", 1: "fault (1)"}
        body = "".join(f"<tr><th>{esc(names.get(int(row.label), row.label))}</th><td>{int(row.no_alarm)}</td>"
                       f"<td>{int(row.alarm)}</td></tr>" for row in frame.itertuples(index=False))
        counts = (f'<table class="eh-table eh-eval-confusion"><tr><th>label</th><th>no alarm</th><th>alarm</th>'
                  f"</tr>{body}</table>")
        found = [(f"holdout_{key}", metrics[f"holdout_{key}"]) for key in HOLDOUT_METRICS
                 if f"holdout_{key}" in metrics]
        scores = "".join(f"<tr><td>{esc(key)}</td><td>{_cell(value)}</td></tr>" for key, value in found)
        self.table.value = (f'<div style="display:flex;gap:24px;flex-wrap:wrap">{counts}'
                            f'<table class="eh-table"><tr><th>metric</th><th>value</th></tr>{scores}</table></div>')
        rows = metrics.get("holdout_rows")
        f1 = metrics.get("holdout_f1")
        alarms = metrics.get("holdout_false_alarm_rate")
        parts = [f"on {int(rows)} held-out rows" if isinstance(rows, float) else "on the held-out rows"]
        if isinstance(f1, float):
            parts.append(f"F1 {fmt_number(f1)}")
        if isinstance(alarms, float):
            parts.append(f"false alarms on {100 * alarms:.2g} % of normal rows")
        self.summary.value = f'<div class="eh-eval-words">Out of sample, {esc(", ".join(parts))}.</div>'

    @property
    def figure_shown(self) -> bool:
        """The figure is on the page (a backtest by horizon step is shown)."""
        return bool(self.figure_box.children)

    def _hide_figure(self) -> None:
        if self.figure_box.children:
            self.figure_box.children = ()

    def _failed(self, exc: BaseException) -> None:
        self.summary.value = f'<span class="eh-health-detail">{esc(describe_error(exc))}</span>'
        self._on_error(describe_error(exc))

    def stop(self) -> None:
        """Fetch nothing more (the panel is closing)."""
        self._fetcher.close()


def _cell(value: Any) -> str:
    return "–" if value is None else esc(fmt_number(value))
