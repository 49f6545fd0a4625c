"""The control panel: ``panel(hub, **options)`` (what ``hub.panel()`` shows).

Layout: a header (plugin health, the REST server toggle and URL), the error and message banners,
then the experiment list on the left and, on the right, tabs: New experiment / Overview / Figures /
Evaluation / EDA / Runs of the selected experiment, and Compare (every experiment's latest run).

Threads: hub events arrive on the hub's threads and only set traits (state, progress, figure
pickers) or mark the experiment list for a redraw, which one throttled thread does however many
events arrive (at most ten times a second, less often the more a redraw costs); slow work
(figures, runs, evaluation, any hub action) runs in small background threads, and tabs that read
much (Evaluation, Compare) only while they are shown; a timer thread refreshes health
and the server state and redraws the list (queue positions move without events of their own)
every ``health_interval`` seconds. ``close()`` unsubscribes, stops the timer and closes the widgets.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from .background import Runner
from .compare import ComparePane
from .create_form import CreateForm
from .evaluation import EvaluationPane
from .experiment_list import ExperimentList
from .experiment_view import ExperimentView
from .figures import FigurePane
from .health import HealthBadges
from .lifecycle import close_tree
from .runs import RunsPane
from .server import ServerControl
from .style import STYLESHEET, banner

TAB_CREATE, TAB_OVERVIEW, TAB_FIGURES, TAB_EVALUATION, TAB_EDA, TAB_RUNS, TAB_COMPARE = range(7)
OPTIONS = ("namespace", "server_port", "health_interval", "sample", "name", "select", "serve")


def panel(hub: Any, **options: Any) -> Panel:
    """The ipywidgets control panel over ``hub``. Options:

    * ``namespace``: where DataFrame variables are looked up (default: the IPython user namespace);
    * ``server_port``: port for the server toggle (default None: the hub's setting, 0 under Voila);
    * ``health_interval``: seconds between health / server / list refreshes (default 5; 0: no timer);
    * ``sample``: the sample data set preselected in the create form (default ``prophet_daily``);
    * ``name``: the name offered in the create form (default: a unique suggestion);
    * ``select``: the experiment selected first (default: the first one);
    * ``serve``: start the REST server now (default False).
    """
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"unknown panel options {sorted(unknown)}; known: {list(OPTIONS)}")
    return Panel(hub, **options)


class Panel(w.VBox):
    """The app object. Key widgets are attributes (and carry ``eh-*`` CSS classes, see README)."""

    def __init__(self, hub: Any, namespace: Mapping[str, Any] | None = None, server_port: int | None = None,
                 health_interval: float = 5.0, sample: str | None = "prophet_daily", name: str | None = None,
                 select: str | None = None, serve: bool = False) -> None:
        self.hub = hub
        self._closed = False
        self._lock = threading.Lock()
        self._reveal: set[str] = set()  # created here: show its figures once it is ready
        self.error = w.HTML(layout=w.Layout(width="100%"))
        self.error.add_class("eh-error")
        self.message = w.HTML(layout=w.Layout(width="100%"))
        self.message.add_class("eh-message")
        self.runner = Runner(self.show_error, on_start=self.clear_banners)

        # header: health and server
        self.health = HealthBadges(hub)
        self.server = ServerControl(hub, self.runner, server_port) if hasattr(hub, "serve") else None
        self.server_toggle = self.server.toggle if self.server else None
        self.server_url = self.server.url if self.server else None
        title = w.HTML('<span class="eh-title">ExperimentHub</span>', layout=w.Layout(margin="0 16px 0 0"))
        header = w.HBox([title, self.health, w.HBox(layout=w.Layout(flex="1 1 auto")),
                         *([self.server] if self.server else [])],
                        layout=w.Layout(width="100%", align_items="center", flex_flow="row wrap"))
        header.add_class("eh-header")

        # left: the experiments
        self.experiment_list = ExperimentList(hub, self.runner, self.show_message)
        self.restore_all = w.Button(description="Restore from MLflow", icon="history", layout=w.Layout(width="auto"),
                                    tooltip="Bring back every experiment saved in MLflow that the hub does not hold "
                                            "(hub.restore): listed at once, each loaded when first used")
        self.restore_all.add_class("eh-restore-all")
        self.restore_all.on_click(self._restore_all)
        left = w.VBox([w.HTML("<b>Experiments</b>"), self.experiment_list, self.restore_all],
                      layout=w.Layout(width="400px", min_width="300px", flex="0 0 400px", margin="0 12px 0 0"))

        # right: create form and the selected experiment
        self.create_form = CreateForm(hub, self.runner, self._created, self.show_error, namespace, sample, name)
        self.view = ExperimentView(hub, self.runner, self.show_message, namespace, on_error=self.show_error)
        self.figures = FigurePane(hub, "model", self.show_error)
        self.evaluation = EvaluationPane(hub, self.show_error)
        self.eda = FigurePane(hub, "eda", self.show_error)
        self.runs = RunsPane(hub, self.runner, self._loaded)
        self.compare = ComparePane(hub, self.show_error)
        self.restore_name = w.Text(description="Name", placeholder="an experiment saved earlier",
                                   layout=w.Layout(width="300px"))
        self.restore_name.add_class("eh-restore-name")
        self.restore_find = w.Button(description="Find runs", icon="search")
        self.restore_find.add_class("eh-restore-find")
        self.restore = RunsPane(hub, self.runner, self._loaded, prefix="eh-restore",
                                load_class="eh-restore-load-button")
        self.restore_find.on_click(lambda _: self._find_runs())
        restore_box = w.Accordion(children=[w.VBox([w.HBox([self.restore_name, self.restore_find]), self.restore])],
                                  titles=("Load a saved experiment from MLflow",))
        self.tabs = w.Tab(children=[w.VBox([self.create_form, restore_box]), self.view, self.figures,
                                    self.evaluation, self.eda, self.runs, self.compare],
                          titles=("New experiment", "Overview", "Figures", "Evaluation", "EDA", "Runs", "Compare"),
                          layout=w.Layout(width="100%"))
        self.tabs.add_class("eh-tabs")
        right = w.VBox([self.view.heading, self.tabs], layout=w.Layout(flex="1 1 auto", min_width="0", width="auto"))
        body = w.HBox([left, right], layout=w.Layout(width="100%", align_items="flex-start"))

        super().__init__([w.HTML(STYLESHEET), header, self.error, self.message, body],
                         layout=w.Layout(width="100%"))
        self.add_class("eh-panel")
        self._aliases()

        self.experiment_list.observe(self._selected, "selected")
        self.tabs.observe(self._tab_changed, "selected_index")
        self._subscription = hub.subscribe(self._on_event)
        self.experiment_list.render()  # anything created between the first look and subscribing
        first = select if select in self.experiment_list.rows else next(iter(self.experiment_list.rows), None)
        if first is not None:
            self.experiment_list.select(first)
            self.tabs.selected_index = TAB_OVERVIEW
        else:
            self._selected({"new": None})
            self.tabs.selected_index = TAB_CREATE

        self._stop = threading.Event()
        self._interval = float(health_interval)
        self.timer = threading.Thread(target=self._timer, name="experimenthub-panel-timer", daemon=True)
        self.timer.start()
        if serve and self.server is not None:
            self.server.toggle.value = True

    def _aliases(self) -> None:
        """Stable handles for tests and notebooks (each also has an ``eh-*`` CSS class)."""
        form, view = self.create_form, self.view
        self.create_name, self.create_type, self.create_model = form.name, form.type, form.model
        self.create_source, self.create_sample = form.source.kind, form.source.sample
        self.create_upload, self.create_variable = form.source.upload, form.source.variable
        self.create_params, self.create_json, self.create_button = form.params, form.json, form.button
        self.create_ds, self.create_target = form.ds, form.target
        self.create_features, self.create_label = form.features, form.label
        self.state, self.stage, self.progress, self.where = view.state, view.stage, view.progress, view.where
        listing = self.experiment_list
        self.list_filter, self.list_state, self.list_counts = listing.filter, listing.state_filter, \
            listing.count_line
        self.stop_selected, self.delete_selected = listing.stop_checked, listing.delete_checked
        self.train_button, self.retrain_button, self.stop_button = view.train_button, view.retrain_button, \
            view.stop_button
        self.save_button, self.delete_button = view.save_button, view.delete_button
        self.sweep_grid, self.sweep_metric, self.sweep_button = view.sweep.grid, view.sweep.metric, view.sweep.button
        self.sweep_status, self.sweep_candidates = view.sweep.status, view.sweep.candidates
        self.predict_button, self.predict_source = view.predict_button, view.predict_source
        self.predict_result, self.watch_toggle = view.predict_result, view.watch_toggle
        self.figure_picker, self.figure = self.figures.picker, self.figures.figure
        self.evaluation_summary, self.evaluation_table = self.evaluation.summary, self.evaluation.table
        self.compare_metric, self.compare_table = self.compare.metric, self.compare.table
        self.compare_refresh = self.compare.refresh_button
        self.eda_picker, self.eda_figure = self.eda.picker, self.eda.figure
        self.runs_picker, self.load_button = self.runs.picker, self.runs.load_button

    @property
    def evaluation_figure(self) -> Any:
        """The Evaluation tab's FigureWidget (None until the tab is first shown)."""
        return self.evaluation.figure

    @property
    def compare_figure(self) -> Any:
        """The Compare tab's FigureWidget (None until the tab is first shown)."""
        return self.compare.figure

    # -- banners (any thread) -------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.error.value = banner("error", text)

    def show_message(self, text: str) -> None:
        self.message.value = banner("info", text)

    def clear_banners(self) -> None:
        if self.error.value:
            self.error.value = ""
        if self.message.value:
            self.message.value = ""

    # -- selection ------------------------------------------------------------------------------------
    @property
    def selected(self) -> str | None:
        return self.experiment_list.selected

    def select(self, name: str | None) -> None:
        self.experiment_list.select(name)

    def _selected(self, change: dict) -> None:
        name = change["new"]
        self.view.set_experiment(name)
        self.figures.set_experiment(name)
        self.evaluation.set_experiment(name)
        self.eda.set_experiment(name)
        self.runs.set_experiment(name)
        self.compare.set_experiment(name)
        if name is not None and self.tabs.selected_index == TAB_CREATE and change.get("old") is not None:
            self.tabs.selected_index = TAB_OVERVIEW

    def _tab_changed(self, change: dict) -> None:
        """Tabs that read much work only while shown."""
        self.evaluation.show(change["new"] == TAB_EVALUATION)
        self.compare.show(change["new"] == TAB_COMPARE)

    def _created(self, name: str) -> None:
        with self._lock:
            self._reveal.add(name)
        self.experiment_list.request()
        self.select(name)
        with self._lock:  # the "ready" event may have revealed the figures already: keep them shown
            if name in self._reveal:
                self.tabs.selected_index = TAB_OVERVIEW
        self._maybe_reveal(name)

    def _loaded(self, name: str, run_id: str) -> None:
        self.experiment_list.request()
        self.select(name)
        self.show_message(f"Loaded {name} from MLflow run {run_id}")

    def _restore_all(self, _: Any = None) -> None:
        """hub.restore() in the background; the experiments arrive as hub events, the message counts them."""
        def done(names: list[str]) -> None:
            if not names:
                self.show_message("Nothing to restore: every experiment saved in MLflow is in the hub already")
                return
            shown = ", ".join(sorted(names)[:10]) + (" …" if len(names) > 10 else "")
            self.show_message(f"Restored {len(names)} experiment{'' if len(names) == 1 else 's'} from MLflow "
                              f"({shown}); each loads when first used")

        self.runner.run("Restoring…", self.hub.restore, done=done, button=self.restore_all)

    def _find_runs(self) -> None:
        self.restore.set_experiment(self.restore_name.value.strip() or None)

    def _maybe_reveal(self, name: str) -> None:
        """An experiment created here shows its main figure once, as soon as it is ready."""
        with self._lock:
            if name not in self._reveal or self.selected != name:
                return
            status = self.view.status
            if status is None or status.name != name or status.state not in ("ready", "failed", "stopped"):
                return
            self._reveal.discard(name)
            if status.state != "ready":
                return
            self.figures.show_main()  # its first figure, whatever was picked for another experiment
            if self.tabs.selected_index in (TAB_CREATE, TAB_OVERVIEW):
                self.tabs.selected_index = TAB_FIGURES  # under the lock: _created cannot undo it

    # -- hub events (the hub's threads: set traits, hand slow work on) ----------------------------------
    def _on_event(self, event: Any) -> None:
        if self._closed:
            return
        name, kind = event.name, event.kind
        if kind in ("tracking", "experiment_created", "experiment_deleted"):
            self.compare.refresh()  # throttled, and only while the Compare tab is shown
        if kind == "experiment_deleted":
            self.experiment_list.remove(name)
            return
        self.experiment_list.request()  # a flag: the throttled redraw reads every status anew
        if kind == "experiment_created" and self.selected is None:
            self.select(name)
        if name != self.selected:
            if kind == "state_changed" and self.view.queued:
                self.view.update()  # a training started or ended: the selected one moved up the queue
            return
        if kind in ("state_changed", "progress", "experiment_created", "tracking"):
            self.view.update()
        if kind == "state_changed":
            self.figures.refresh_names()
            self.evaluation.refresh()
            self.eda.refresh_names()
            self.runs.refresh()
            self._maybe_reveal(name)
        elif kind == "figures_updated":
            pane = self.eda if event.data.get("kind") == "eda" else self.figures
            pane.refresh_names(event.data.get("names"))
        elif kind == "tracking":
            self.runs.refresh()

    # -- the timer thread -----------------------------------------------------------------------------
    def _timer(self) -> None:
        while not self._stop.is_set():
            steps = [*([self.server.sync] if self.server else []), self.experiment_list.request,
                     self.view.update, self.health.refresh]  # health last: it may wait on a plugin
            for step in steps:
                if self._stop.is_set():
                    return
                try:
                    step()
                except Exception:  # a failed refresh shows next time; the timer goes on
                    pass
            if self._interval <= 0:
                return
            self._stop.wait(self._interval)

    # -- closing --------------------------------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> None:
        """Unsubscribe from hub events, stop the timer thread and close every widget of the panel."""
        if self._closed:
            return
        self._closed = True
        self.runner.close()
        self._subscription.close()
        self._stop.set()
        self.experiment_list.stop()
        for pane in (self.figures, self.evaluation, self.eda, self.runs, self.restore, self.compare, self.view.sweep):
            pane.stop()
        if self.timer is not threading.current_thread():
            self.timer.join(timeout)
        close_tree(self)
        anomaly = self.create_form.anomaly  # widgets that may be off the page right now
        for widget in (anomaly.width, anomaly.hint, self.evaluation.figure, self.compare.figure):
            close_tree(widget)

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<ExperimentHub panel: {len(self.experiment_list.rows)} experiments, selected={self.selected!r}>"
