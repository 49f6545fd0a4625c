"""The selected experiment: state, stage and progress, metrics, and its actions.

Each button calls the hub method its REST route calls (train, retrain, stop_training, predict,
save, delete; watch/unwatch when the hub has streaming; sweep, in its own fold: :mod:`.sweep`) in a
background thread; the results come back as trait changes and as hub events the panel forwards here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from experimenthub.errors import ExperimentNotFound

from .background import Runner
from .data_source import DataSource
from .lifecycle import Quiet
from .list_table import queue_label
from .style import STATE_COLORS, esc, fmt_number, table
from .sweep import SweepControl

BUSY = ("created", "training")


def _button(description: str, icon: str, css: str, tooltip: str, style: str = "") -> w.Button:
    button = w.Button(description=description, icon=icon, tooltip=tooltip, button_style=style,
                      layout=w.Layout(width="auto", min_width="96px"))
    button.add_class(css)
    return button


class ExperimentView(w.VBox):
    def __init__(self, hub: Any, runner: Runner, on_message: Callable[[str], None],
                 namespace: Mapping[str, Any] | None = None, on_error: Callable[[str], None] | None = None) -> None:
        self._hub, self._runner, self._on_message = hub, runner, on_message
        self._lock = threading.Lock()
        self._quiet = Quiet()
        self.name: str | None = None
        self.status: Any = None

        self.heading = w.HTML()
        self.heading.add_class("eh-selected")
        self.state = w.Label(value="", layout=w.Layout(width="80px", justify_content="center"))
        self.state.add_class("eh-state-label")
        self.state.add_class("eh-state")
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="260px"))
        self.progress.add_class("eh-progress")
        self.stage = w.Label(value="")
        self.stage.add_class("eh-stage")
        self.where = w.HTML()
        self.where.add_class("eh-where")
        self.failure = w.HTML()
        self.failure.add_class("eh-experiment-error")
        self.details = w.HTML()
        self.details.add_class("eh-details")
        self.metrics = w.HTML()
        self.metrics.add_class("eh-metrics")

        self.train_button = _button("Train", "play", "eh-train-button",
                                    "Train again with the same config and data (a new MLflow run)", "primary")
        self.retrain_button = _button("Retrain", "repeat", "eh-retrain-button",
                                      "Retrain on the training data plus new observations since (a new run)")
        self.stop_button = _button("Stop", "stop", "eh-stop-button", "Stop the running training now", "warning")
        self.save_button = _button("Save", "save", "eh-save-button",
                                   "Bring the MLflow run up to date (predictions, figures)")
        self.delete_button = _button("Delete", "trash", "eh-delete-button",
                                     "Remove the experiment from the hub (its MLflow runs stay)", "danger")
        self.watch_toggle: w.ToggleButton | None = None
        actions = [self.train_button, self.retrain_button, self.stop_button, self.save_button, self.delete_button]
        if hasattr(hub, "watch"):
            self.watch_toggle = w.ToggleButton(value=False, description="Stream", icon="rss",
                                               tooltip="Streaming mode: predict every batch arriving on the "
                                                       "experiment's queue (hub.watch)",
                                               layout=w.Layout(width="auto", min_width="96px"))
            self.watch_toggle.add_class("eh-watch-toggle")
            self.watch_toggle.observe(self._watch_changed, "value")
            actions.append(self.watch_toggle)
        self.train_button.on_click(self._train)
        self.retrain_button.on_click(self._retrain)
        self.stop_button.on_click(self._stop)
        self.save_button.on_click(self._save)
        self.delete_button.on_click(self._delete)
        self._confirm_delete = False

        self.predict_source = DataSource("eh-predict", namespace, sample="prophet_daily",
                                         sources=("none", "sample", "upload", "variable"),
                                         labels={"none": "Horizon ahead / queue"})
        self.predict_button = _button("Predict", "magic", "eh-predict-button", "hub.predict on the chosen data")
        self.predict_button.on_click(self._predict)
        self.predict_result = w.HTML()
        self.predict_result.add_class("eh-predict-result")
        self.sweep = SweepControl(hub, runner, after=self.update, on_error=on_error or on_message)
        self.sweep_box = w.Accordion(children=[self.sweep], titles=("Sweep: fit a parameter grid, keep the best",),
                                     layout=w.Layout(width="100%", margin="6px 0"))
        self.sweep_box.add_class("eh-sweep-box")
        self.sweep_box.observe(lambda change: self.sweep.show(change["new"] == 0), "selected_index")
        self.placeholder = w.HTML('<span class="eh-muted">Select an experiment on the left, or create one in '
                                  "the New experiment tab.</span>")
        self.body = w.VBox([
            w.HBox([self.state, self.progress, self.stage, self.where],
                   layout=w.Layout(align_items="center", grid_gap="8px")),
            self.failure,
            w.HBox(actions, layout=w.Layout(flex_flow="row wrap", margin="6px 0")),
            self.sweep_box,
            w.HBox([self.metrics, self.details], layout=w.Layout(flex_flow="row wrap", grid_gap="24px")),
            w.HTML('<div style="font-weight:600;margin-top:8px">Predict</div>'),
            self.predict_source,
            w.HBox([self.predict_button], layout=w.Layout(margin="4px 0")),
            self.predict_result,
        ], layout=w.Layout(width="100%"))
        super().__init__([self.placeholder], layout=w.Layout(width="100%", padding="4px"))
        self.add_class("eh-overview")

    # -- following the selected experiment ---------------------------------------------------------
    def set_experiment(self, name: str | None) -> None:
        with self._lock:
            self.name = name
            self.status = None
        self._confirm_delete = False
        self.delete_button.description = "Delete"
        self.predict_result.value = ""
        self.children = (self.body,) if name else (self.placeholder,)
        if name is None:
            self.heading.value = ""
            self.sweep.set_experiment(None, None, None)
            return
        self._sweep_for(name)
        self.update()
        self._sync_watch()

    def _sweep_for(self, name: str) -> None:
        """The sweep control follows the selection (before the first update shows its status)."""
        try:
            status = self._hub.status(name)
            cls = self._hub.experiment_type(status.experiment_type)
        except ExperimentNotFound:
            return
        except Exception:  # a type this hub no longer knows: no grid of its own
            status, cls = self._hub.status(name), None
        self.sweep.set_experiment(name, status.model_type, cls)

    def update(self) -> None:
        """Show the selected experiment's status as the hub has it now (any thread)."""
        with self._lock:
            name = self.name
            if name is None:
                return
            try:
                status = self._hub.status(name)
            except ExperimentNotFound:
                return
            self.status = status
            self._show(status)

    def _show(self, status: Any) -> None:
        color = STATE_COLORS.get(status.state, "#6e7781")
        self.heading.value = (f'<b style="font-size:15px">{esc(status.name)}</b> '
                              f'<span class="eh-muted">{esc(status.experiment_type)} / {esc(status.model_type)}'
                              f'</span> <span class="eh-badge" style="background:{color}">{esc(status.state)}</span>')
        self.state.value = status.state
        self.state.style.background = color
        self.state.style.text_color = "white"
        self.progress.value = float(status.progress or 0.0)
        self.progress.bar_style = {"ready": "success", "failed": "danger", "stopped": "warning"}.get(status.state, "")
        self.stage.value = status.stage or ""
        where = _where(status)
        if self.where.value != where:
            self.where.value = where
        self.failure.value = (f'<div class="eh-banner-error">Training failed: {esc(status.error)}</div>'
                              if status.state == "failed" and status.error else "")
        self.metrics.value = (table([(k, fmt_number(v)) for k, v in sorted(status.metrics.items())],
                                    ("metric", "value")) if status.metrics else "")
        facts = [("run", status.run_id or "–"), ("MLflow experiment", status.exp_id or "–"),
                 ("tracking", status.tracking or "–"),
                 *([("runs on", status.executor)] if status.state in BUSY and status.executor else []),
                 ("started", _when(status.started_at)), ("ended", _when(status.ended_at))]
        if status.retrain:
            facts.append(("retrain check", f"{status.retrain.get('metric')} = {fmt_number(status.retrain.get('value'))}"
                                           f" (threshold {status.retrain.get('threshold')})"))
        self.details.value = table(facts)
        self._enable(status)
        self.sweep.show_status(status)

    @property
    def queued(self) -> bool:
        """The shown experiment waits for a training slot (its place moves as others start)."""
        status = self.status
        return status is not None and status.state in BUSY and (status.stage == "queued"
                                                                 or status.queue_position is not None)

    def _sync_watch(self) -> None:
        if self.watch_toggle is None or self.name is None:
            return
        try:
            watching = bool(self._hub.watching(self.name))
        except Exception:
            watching = False
        with self._quiet:
            if self.watch_toggle.value != watching:
                self.watch_toggle.value = watching

    def _enable(self, status: Any) -> None:
        busy = status.state in BUSY
        ready = status.state == "ready"
        for button, disabled in ((self.train_button, busy), (self.retrain_button, busy),
                                 (self.stop_button, not busy), (self.save_button, not ready),
                                 (self.predict_button, not ready)):
            if button.description.endswith("…"):
                continue  # its action is running; the runner enables it after
            if button.disabled != disabled:
                button.disabled = disabled

    # -- actions (each returns at once; the hub call runs in a background thread) ------------------------
    def _act(self, label: str, call: Callable[[str], Any], button: w.Button,
             done: Callable[[Any], None] | None = None) -> None:
        name = self.name
        if name is None:
            return
        self._runner.run(label, lambda: call(name), done=done, button=button, after=self.update)

    def _train(self, _: Any = None) -> None:
        self._act("Starting…", self._hub.train, self.train_button)

    def _retrain(self, _: Any = None) -> None:
        self._act("Starting…", self._hub.retrain, self.retrain_button)

    def _stop(self, _: Any = None) -> None:
        self._act("Stopping…", self._hub.stop_training, self.stop_button)

    def _save(self, _: Any = None) -> None:
        name = self.name
        self._act("Saving…", self._hub.save, self.save_button,
                  done=lambda run_id: self._on_message(f"Saved {name} to MLflow run {run_id}"))

    def _delete(self, _: Any = None) -> None:
        if not self._confirm_delete:
            self._confirm_delete = True
            self.delete_button.description = "Click again to delete"
            return
        self._confirm_delete = False
        self.delete_button.description = "Delete"
        name = self.name
        self._act("Deleting…", self._hub.delete, self.delete_button,
                  done=lambda _: self._on_message(f"Deleted {name} (its MLflow runs stay; load them from the "
                                                  "New experiment tab)"))

    def _predict(self, _: Any = None) -> None:
        name = self.name
        if name is None:
            return

        def work() -> Any:
            return self._hub.predict(name, self.predict_source.frame())

        self._runner.run("Predicting…", work, done=self._show_predictions, button=self.predict_button,
                         after=self.update)

    def _show_predictions(self, result: Any) -> None:
        flagged = int(result["anomaly"].sum()) if "anomaly" in result.columns else None
        summary = f"{len(result):,} rows predicted" + (f", {flagged} flagged as anomalies" if flagged is not None
                                                        else "")
        head = result.head(8).to_html(index=False, classes="eh-table", border=0, float_format=lambda v: f"{v:.4g}")
        self.predict_result.value = f"<div>{esc(summary)}</div>{head}"

    def _watch_changed(self, change: dict) -> None:
        if self._quiet or self.name is None:
            return
        name = self.name
        if change["new"]:
            self._runner.run("watch", lambda: self._hub.watch(name), after=self._sync_watch,
                             done=lambda _: self._on_message(f"Streaming: predicting every batch arriving on "
                                                             f"the queue {name!r}"))
        else:
            self._runner.run("unwatch", lambda: self._hub.unwatch(name), after=self._sync_watch)


def _where(status: Any) -> str:
    """While queued, the place in the queue; while training, where it runs (``local`` or a Dask
    worker's address; a sweep's candidates may run in several places and some wait for a slot)."""
    if status.state not in BUSY:
        return ""
    position = status.queue_position
    if (status.stage or "").startswith("sweep"):  # running; some of its candidates may wait for a slot
        waiting = " · candidates wait for a slot" if position is not None else ""
        where = f"running on <code>{esc(status.executor)}</code>" if status.executor else "running"
        return f'<span class="eh-muted eh-executor">{where}{esc(waiting)}</span>'
    if position is not None or status.stage == "queued":
        ahead = ("" if position is None else " · starts next" if position == 0 else
                 f" · {position} training{'' if position == 1 else 's'} ahead")
        return f'<span class="eh-muted eh-queued">{esc(queue_label(position))}{esc(ahead)}</span>'
    if status.executor:
        return f'<span class="eh-muted eh-executor">running on <code>{esc(status.executor)}</code></span>'
    return ""


def _when(moment: Any) -> str:
    """A timestamp in the viewer's local time."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "–"
