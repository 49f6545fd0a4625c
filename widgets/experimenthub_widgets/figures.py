"""Model or EDA figures of the selected experiment as an interactive Plotly ``FigureWidget``.

A Dropdown picks the figure. The figure is fetched in a background thread (``hub.plot_json`` /
``hub.plot_eda_json``, the calls behind ``GET /plot/{name}``) and put into the FigureWidget inside
``batch_update()``; a ``figures_updated`` event (training done, predictions made) fetches it again.
Bursts of events collapse into one fetch. The hub builds a figure when it is first asked for, so a
first fetch may take a moment: the note says ``building <figure>…`` meanwhile (class ``eh-building``).
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from experimenthub.errors import Busy, ExperimentNotFound, NotReady, PlotNotFound

from .background import Coalescer, describe_error
from .lifecycle import Quiet
from .style import esc

#: the figure shown first when an experiment's figures arrive
PREFERRED = ("forecast", "control_chart", "series", "correlation")


def figure_widget() -> Any:
    """A Plotly FigureWidget, or None when plotly's widget support (anywidget) is missing."""
    try:
        import plotly.graph_objects as go

        return go.FigureWidget()
    except ImportError:
        return None


def figure_or_note(css: str) -> Any:
    """A FigureWidget with class ``css``, or an HTML note saying what is missing (no anywidget).

    Each FigureWidget carries plotly.js (about 5 MB) in its state, which a notebook run by nbclient
    stores in its metadata: panes whose figure waits for a tab to be shown make it then."""
    widget = figure_widget()
    if widget is None:
        widget = w.HTML('<span class="eh-health-detail">Interactive figures need the anywidget package '
                        "(pip install anywidget).</span>")
    widget.add_class(css)
    return widget


def draw(widget: Any, new: Any) -> None:
    """Put the Plotly figure ``new`` into the FigureWidget ``widget`` in one update (any thread); the
    widget fills its column. Nothing happens when ``widget`` is not a FigureWidget (no anywidget)."""
    if not hasattr(widget, "batch_update"):
        return
    layout = new.layout.to_plotly_json()
    layout.pop("width", None)
    layout.setdefault("autosize", True)
    with widget.batch_update():
        widget.data = ()
        widget.add_traces(list(new.data))
        widget.layout = layout


class FigurePane(w.VBox):
    """``picker`` (Dropdown, ``eh-figure-picker`` / ``eh-eda-picker``), ``figure`` (FigureWidget,
    ``eh-figure`` / ``eh-eda-figure``) and ``note`` (HTML: why no figure is shown)."""

    def __init__(self, hub: Any, kind: str, on_error: Any) -> None:
        self._hub, self.kind, self._on_error = hub, kind, on_error
        prefix = "eh-figure" if kind == "model" else "eh-eda"
        self._lock = threading.Lock()
        self._quiet = Quiet()
        self._name: str | None = None
        self._chosen: str | None = None  # the figure the user picked (kept across experiments)
        self.shown: tuple[str | None, str | None] = (None, None)  # (experiment, figure) in the widget
        self.picker = w.Dropdown(options=[], description="Figure", layout=w.Layout(width="320px"))
        self.picker.add_class(f"{prefix}-picker")
        self.note = w.HTML()
        self.note.add_class(f"{prefix}-note")
        self.figure = figure_widget()
        if self.figure is None:
            self.figure = w.HTML('<span class="eh-health-detail">Interactive figures need the anywidget package '
                                 "(pip install anywidget).</span>")
        self.figure.add_class("eh-figure" if kind == "model" else "eh-eda-figure")
        self.picker.observe(self._picked, "value")
        self._fetcher = Coalescer(f"{kind}-figure", self._fetch, self._failed)
        super().__init__([self.picker, self.note, self.figure], layout=w.Layout(width="100%"))

    # -- what to show --------------------------------------------------------------------------
    def set_experiment(self, name: str | None) -> None:
        with self._lock:
            self._name = name
        self._clear()
        self.refresh_names()

    def refresh_names(self, names: list[str] | None = None) -> None:
        """Offer the experiment's figures (``names`` from a figures_updated event, else asked)."""
        name = self._name
        if name is None:
            self._set_options([])
            self.note.value = '<span class="eh-muted">Select an experiment.</span>'
            return
        if names is None:
            try:
                model, eda = self._hub.plot_names(name)
            except ExperimentNotFound:
                return
            names = model if self.kind == "model" else eda
        self._set_options(list(names))
        if not names:
            self.note.value = ('<span class="eh-muted">No figures yet: they appear when training ends.</span>'
                               if self.kind == "model" else
                               '<span class="eh-muted">No EDA figures yet: they come when training starts.</span>')
            return
        self.request()

    def show_main(self) -> None:
        """Pick the experiment's main figure, the first it lists (``forecast``, ``control_chart``), as
        after creating it; the figure the user picked before is forgotten."""
        name = self._name
        if name is None:
            return
        try:
            model, eda = self._hub.plot_names(name)
        except ExperimentNotFound:
            return
        names = list(model if self.kind == "model" else eda)
        if not names:
            return
        self._chosen = None
        self._set_options(names, prefer=names[0])
        self.request()

    def _set_options(self, names: list[str], prefer: str | None = None) -> None:
        with self._quiet:
            current = self.picker.value
            if list(self.picker.options) != names:
                self.picker.options = names
            wanted = next((n for n in (prefer, self._chosen, current, *PREFERRED) if n in names),
                          names[0] if names else None)
            if self.picker.value != wanted:
                self.picker.value = wanted

    def _picked(self, change: dict) -> None:
        if not self._quiet and change["new"]:
            self._chosen = change["new"]
        self.request()

    def request(self) -> None:
        """Fetch the picked figure again (in a background thread)."""
        if self._name is not None and self.picker.value:
            self._fetcher.request()

    @property
    def busy(self) -> bool:
        return self._fetcher.busy

    # -- fetching (background thread) ------------------------------------------------------------
    def _fetch(self) -> None:
        import plotly.io

        with self._lock:
            name, plot = self._name, self.picker.value
        if name is None or not plot:
            return
        if self.shown != (name, plot):  # a figure not drawn here yet: the hub may build it first
            self.note.value = f'<span class="eh-muted eh-building">building {esc(plot)}…</span>'
        try:
            text = (self._hub.plot_json if self.kind == "model" else self._hub.plot_eda_json)(name, plot)
        except (Busy, NotReady, PlotNotFound, ExperimentNotFound) as exc:
            self.note.value = f'<span class="eh-muted">{esc(describe_error(exc))}</span>'
            return
        new = plotly.io.from_json(text)
        with self._lock:
            if (self._name, self.picker.value) != (name, plot):
                return  # the choice changed meanwhile; that fetch is queued already
        self._show(new)
        self.shown = (name, plot)
        self.note.value = ""

    def _show(self, new: Any) -> None:
        draw(self.figure, new)

    def _failed(self, exc: BaseException) -> None:
        self.note.value = f'<span class="eh-health-detail">{esc(describe_error(exc))}</span>'
        self._on_error(describe_error(exc))

    def _clear(self) -> None:
        self.shown = (None, None)
        figure = self.figure
        if hasattr(figure, "batch_update"):
            with figure.batch_update():
                figure.data = ()
                figure.layout = {}

    def stop(self) -> None:
        """Fetch nothing more (the panel is closing); the widgets stay until closed."""
        self._fetcher.close()

    def close(self) -> None:
        self.stop()
        super().close()
