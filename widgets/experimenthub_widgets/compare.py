"""The Compare tab: every experiment's latest model run side by side (``hub.compare()``, the call
behind ``GET /compare``), sorted by a chosen metric, best first, as a table and a bar chart; and the
model runs of the selected experiment with their lineage (``hub.compare(name)``: which run each
replaced, what triggered it, the rows it added, the sweep that chose it).

The leaderboard reads the tracking store, which costs more the more experiments there are: it is
read in a background thread, only while the tab is shown, and at most as often as a
:class:`~.background.Throttle` allows however many runs are logged meanwhile. Choosing another
metric or order re-sorts what was read (also in the background), without asking MLflow again.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from experimenthub.comparing import higher_is_better
from experimenthub.errors import ExperimentNotFound

from .background import Coalescer, Throttle, WhenShown, describe_error
from .figures import draw, figure_or_note
from .lifecycle import Quiet
from .style import attr, esc, fmt_number

#: columns of hub.compare() that are not metrics
BASE_COLUMNS = ("experiment", "run_id", "experiment_type", "model_type", "kind", "state", "start_time", "end_time",
                "status", "replaces", "trigger", "rows_added", "sweep", "candidate")
#: the metric chosen first, the first one present
PREFERRED = ("cv_mape", "holdout_f1", "mape", "f1", "mae", "anomaly_rate")
#: metrics shown beside the chosen one when present (at most EXTRA of them)
CONTEXT = ("cv_rel_mae", "cv_mape", "mape", "mae", "holdout_f1", "f1", "false_alarm_rate", "anomaly_rate")
EXTRA = 3
ROWS = 100  # table rows drawn
BARS = 30  # bars drawn
ORDERS = ("best first", "worst first")
VALUE = ' class="eh-compare-value"'  # the chosen metric's cells


def metric_columns(frame: Any) -> list[str]:
    """The numeric metric columns of a leaderboard, in its order."""
    import pandas as pd

    return [str(c) for c in frame.columns if c not in BASE_COLUMNS and not str(c).startswith("params.")
            and pd.api.types.is_numeric_dtype(frame[c])]


def ranked(frame: Any, metric: str | None, best_first: bool = True) -> Any:
    """The rows sorted by ``metric`` (best first unless told otherwise, by ``higher_is_better``); rows
    without it last either way."""
    if not metric or metric not in frame.columns:
        return frame.reset_index(drop=True)
    ascending = not higher_is_better(metric)
    if not best_first:
        ascending = not ascending
    return frame.sort_values(metric, ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)


class ComparePane(w.VBox):
    """``metric`` (Dropdown, ``eh-compare-metric``), ``order`` (ToggleButtons best / worst first,
    ``eh-compare-order``), ``refresh_button`` (``eh-compare-refresh``), ``note`` (``eh-compare-note``),
    ``table`` (HTML, ``eh-compare-table``: ``tr.eh-compare-row`` with ``data-name``), ``figure``
    (FigureWidget, ``eh-compare-figure``, made when the tab is first shown), ``runs`` (HTML,
    ``eh-compare-runs``: the selected experiment's model runs and lineage). ``frame`` is the
    leaderboard as last read (None before), ``order_shown`` the experiments in the order the table
    shows them."""

    def __init__(self, hub: Any, on_error: Any) -> None:
        self._hub, self._on_error = hub, on_error
        self._lock = threading.Lock()
        self._draw_lock = threading.Lock()
        self._quiet = Quiet()
        self._name: str | None = None
        self.frame: Any = None
        self.order_shown: list[str] = []
        self.lineage: Any = None  # hub.compare(selected) as last read
        self.lineage_of: str | None = None

        self.metric = w.Dropdown(options=[], description="Metric", layout=w.Layout(width="260px"))
        self.metric.add_class("eh-compare-metric")
        self.order = w.ToggleButtons(options=ORDERS, value=ORDERS[0], style={"button_width": "auto"})
        self.order.add_class("eh-compare-order")
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="auto"),
                                       tooltip="Read the leaderboard from MLflow again (hub.compare)")
        self.refresh_button.add_class("eh-compare-refresh")
        self.note = w.HTML()
        self.note.add_class("eh-compare-note")
        self.table = w.HTML(layout=w.Layout(width="100%", max_height="420px", overflow="auto"))
        self.table.add_class("eh-compare-table")
        self.figure: Any = None  # made when the tab is first shown (plotly.js travels with it)
        self.figure_box = w.Box([], layout=w.Layout(width="100%"))
        self.runs = w.HTML()
        self.runs.add_class("eh-compare-runs")

        self.metric.observe(self._choice_changed, "value")
        self.order.observe(self._choice_changed, "value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self._reader = Throttle("compare", self._fetch, self._failed, interval=0.5, max_interval=5.0, cost_ratio=5.0)
        self.updates = WhenShown(self._reader, stale=True)  # read when first shown
        self._drawer = Coalescer("compare-draw", self._draw, self._failed)
        self._lineage_reader = Coalescer("compare-runs", self._fetch_lineage, self._failed)
        self.lineage_updates = WhenShown(self._lineage_reader)
        super().__init__([
            w.HBox([self.metric, self.order, self.refresh_button],
                   layout=w.Layout(align_items="center", flex_flow="row wrap", grid_gap="8px")),
            self.note, self.table, self.figure_box, self.runs,
        ], layout=w.Layout(width="100%", padding="4px"))
        self.add_class("eh-compare")

    # -- requests (any thread, return at once) ---------------------------------------------------
    def refresh(self) -> None:
        """Read the leaderboard again (now when the tab is shown, else once it is)."""
        self.updates.request()
        self.lineage_updates.request()

    def show(self, shown: bool) -> None:
        """The tab became visible (or hidden); the kernel's thread (widgets are made here)."""
        if shown and self.figure is None:
            self.figure = figure_or_note("eh-compare-figure")
            self.figure_box.children = (self.figure,)
        self.updates.show(shown)
        self.lineage_updates.show(shown)

    def set_experiment(self, name: str | None) -> None:
        with self._lock:
            self._name = name
        self.lineage_updates.request()
        if self.frame is not None:
            self._drawer.request()  # its bar stands out

    @property
    def reads(self) -> int:
        """How many times the leaderboard was read from the tracking store."""
        return self._reader.runs

    @property
    def busy(self) -> bool:
        return self._reader.pending or self._drawer.busy or self._lineage_reader.busy

    def _choice_changed(self, change: dict) -> None:
        if not self._quiet:
            self._drawer.request()

    # -- reading and drawing (background threads) ---------------------------------------------
    def _fetch(self) -> None:
        if self.frame is None:
            self.note.value = '<span class="eh-muted">reading the leaderboard from MLflow…</span>'
        self.frame = self._hub.compare()
        self._draw()

    def _fetch_lineage(self) -> None:
        name = self._name
        if name is None:
            self.lineage, self.lineage_of = None, None
            self.runs.value = ""
            return
        try:
            frame = self._hub.compare(name)
        except ExperimentNotFound:
            return
        if name != self._name:
            return
        self.lineage, self.lineage_of = frame, name
        self._draw_lineage()

    def _draw(self) -> None:
        with self._draw_lock:
            frame = self.frame
            if frame is None:
                return
            metric = self._offer_metrics(metric_columns(frame))
            rows = ranked(frame, metric, self.order.value == ORDERS[0])
            self.order_shown = [str(e) for e in rows["experiment"]] if "experiment" in rows else []
            self.note.value = self._describe(rows, metric)
            self.table.value = self._table(rows, metric)
            self._chart(rows, metric)
            self._draw_lineage()

    def _offer_metrics(self, metrics: list[str]) -> str | None:
        with self._quiet:
            current = self.metric.value
            if list(self.metric.options) != metrics:
                self.metric.options = metrics
            wanted = next((m for m in (current, *PREFERRED) if m in metrics), metrics[0] if metrics else None)
            if self.metric.value != wanted:
                self.metric.value = wanted
        return wanted

    def _describe(self, rows: Any, metric: str | None) -> str:
        count = len(rows)
        if not count:
            return ('<span class="eh-muted">No finished model runs in MLflow yet: they appear here when trainings '
                    "end.</span>")
        text = f"{count} experiment{'' if count == 1 else 's'} (latest model run of each)"
        if metric:
            direction = "higher" if higher_is_better(metric) else "lower"
            missing = int(rows[metric].isna().sum())
            text += f" · by {metric}, {direction} is better"
            if missing:
                text += f" · {missing} without it, last"
        if count > ROWS:
            text += f" · the table shows {ROWS}"
        return f'<span class="eh-muted">{esc(text)}</span>'

    def _table(self, rows: Any, metric: str | None) -> str:
        if not len(rows):
            return ""
        extra = [m for m in CONTEXT if m != metric and m in rows.columns and rows[m].notna().any()][:EXTRA]
        metrics = ([metric] if metric else []) + extra
        head = "".join(f"<th>{esc(m)}</th>" for m in metrics)
        selected = self._name
        body = []
        for rank, values in enumerate(rows.head(ROWS).to_dict(orient="records"), 1):
            name = str(values.get("experiment"))
            cells = "".join(f"<td{VALUE if m == metric else ''}>{_number(values.get(m))}</td>" for m in metrics)
            kind = f"{_text(values.get('experiment_type'))} / {_text(values.get('model_type'))}"
            body.append(
                f'<tr class="eh-compare-row{" eh-compare-selected" if name == selected else ""}" '
                f'data-name="{attr(name)}"><td>{rank}</td><td><b>{esc(name)}</b></td>'
                f"<td>{_text(values.get('state'))}</td><td>{kind}</td><td>{_text(values.get('kind'))}</td>{cells}"
                f"<td>{esc(_when(values.get('end_time')))}</td>"
                f"<td><code>{esc(str(values.get('run_id') or '')[:8])}</code></td></tr>")
        return ('<table class="eh-table"><tr><th>#</th><th>experiment</th><th>state</th><th>type / model</th>'
                f"<th>run</th>{head}<th>ended</th><th>run id</th></tr>{''.join(body)}</table>")

    def _chart(self, rows: Any, metric: str | None) -> None:
        import plotly.graph_objects as go

        if self.figure is None:
            return
        if metric is None or not len(rows):
            draw(self.figure, go.Figure(layout={"height": 80, "margin": {"t": 10, "b": 10}}))
            return
        shown = rows[rows[metric].notna()].head(BARS)
        names = [str(n) for n in shown["experiment"]]
        colors = ["#cf222e" if n == self._name else "#0969da" for n in names]
        direction = "higher" if higher_is_better(metric) else "lower"
        more = f" (the {BARS} {self.order.value.split()[0]})" if len(rows[rows[metric].notna()]) > BARS else ""
        figure = go.Figure(
            [go.Bar(x=names, y=[float(v) for v in shown[metric]], marker_color=colors, name=metric,
                    hovertemplate="%{x}: %{y:.4g}<extra></extra>")],
            layout={"height": 340, "margin": {"t": 50, "r": 20, "b": 90, "l": 60},
                    "title": {"text": f"{metric} per experiment, {direction} is better{more}"},
                    "xaxis": {"type": "category", "tickangle": -30}, "yaxis": {"title": {"text": metric}}})
        draw(self.figure, figure)

    def _draw_lineage(self) -> None:
        frame, name = self.lineage, self.lineage_of
        if frame is None or name is None or name != self._name:
            return
        if not len(frame):
            self.runs.value = f'<span class="eh-muted">No finished model runs of {esc(name)} in MLflow yet.</span>'
            return
        metric = self.metric.value
        shown = metric if metric in frame.columns else None
        columns = [("started", "start_time"), ("run", "kind"), ("run id", "run_id"),
                   *([(shown, shown)] if shown else []), ("replaces", "replaces"), ("trigger", "trigger"),
                   ("rows added", "rows_added"), ("sweep", "sweep")]
        body = []
        for values in frame.to_dict(orient="records"):
            cells = []
            for _, key in columns:
                value = values.get(key)
                if key == "start_time":
                    cells.append(esc(_when(value)))
                elif key in ("run_id", "replaces", "sweep"):
                    cells.append(f"<code>{esc(str(value)[:8])}</code>" if _present(value) else "–")
                elif key == shown:
                    cells.append(_number(value))
                elif key == "rows_added" and _present(value):
                    cells.append(str(int(value)))
                else:
                    cells.append(_text(value))
            body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        head = "".join(f"<th>{esc(title)}</th>" for title, _ in columns)
        self.runs.value = (f'<div style="font-weight:600;margin-top:8px">Model runs of {esc(name)}, newest first '
                           f'(lineage)</div><table class="eh-table"><tr>{head}</tr>{"".join(body)}</table>')

    def _failed(self, exc: BaseException) -> None:
        self.note.value = f'<span class="eh-health-detail">{esc(describe_error(exc))}</span>'

    def stop(self) -> None:
        """Read nothing more (the panel is closing)."""
        self._reader.close()
        self._drawer.close()
        self._lineage_reader.close()


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        import pandas as pd

        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def _text(value: Any) -> str:
    return esc(value) if _present(value) else "–"


def _number(value: Any) -> str:
    return esc(fmt_number(float(value))) if _present(value) else "–"


def _when(moment: Any) -> str:
    if not _present(moment):
        return "–"
    if hasattr(moment, "to_pydatetime"):  # a pandas Timestamp
        moment = moment.to_pydatetime()
    if not hasattr(moment, "astimezone"):
        return str(moment)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")  # the viewer's local time
