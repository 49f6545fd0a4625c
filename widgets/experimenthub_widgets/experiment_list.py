"""The experiments of the hub, one row each: name (click to select), state, progress bar and stage.

Rows follow hub events from any thread (an experiment created over REST appears at once). Each
update re-reads ``hub.status(name)`` under the row's lock, so events handled out of order on
different threads still leave the row showing the latest state.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w
import traitlets

from experimenthub.errors import ExperimentNotFound

from .lifecycle import close_tree
from .style import STATE_COLORS


class ExperimentRow(w.VBox):
    """``name_button`` (``eh-row-name``), ``state`` (a Label, ``eh-row-state``), ``progress``
    (FloatProgress 0..1, ``eh-row-progress``) and ``stage`` (``eh-row-stage``)."""

    def __init__(self, name: str, on_click: Any) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.name_button = w.Button(description=name, tooltip=name,
                                    layout=w.Layout(flex="1 1 auto", width="auto", min_width="0"))
        self.name_button.add_class("eh-row-name")
        self.name_button.on_click(lambda _: on_click(name))
        self.state = w.Label(value="", layout=w.Layout(width="76px", justify_content="center"))
        self.state.add_class("eh-state-label")
        self.state.add_class("eh-row-state")
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(flex="1 1 auto", width="auto"))
        self.progress.add_class("eh-row-progress")
        self.stage = w.Label(value="", layout=w.Layout(width="110px"))
        self.stage.add_class("eh-row-stage")
        self.stage.add_class("eh-muted")
        super().__init__([
            w.HBox([self.name_button, self.state], layout=w.Layout(width="100%", align_items="center")),
            w.HBox([self.progress, self.stage], layout=w.Layout(width="100%", align_items="center")),
        ], layout=w.Layout(width="100%"))
        self.add_class("eh-row")

    def show(self, status: Any) -> None:
        color = STATE_COLORS.get(status.state, "#6e7781")
        self.state.value = status.state
        self.state.style.background = color
        self.state.style.text_color = "white"
        self.progress.value = float(status.progress or 0.0)
        self.progress.bar_style = {"ready": "success", "failed": "danger", "stopped": "warning"}.get(status.state, "")
        stage = status.stage or ""
        if status.state == "failed" and status.error:
            stage = "failed"
            self.stage.tooltip = status.error
        self.stage.value = stage
        self.name_button.tooltip = (f"{status.name}: {status.experiment_type} / {status.model_type}"
                                    + (f"\n{status.error}" if status.error else ""))


class ExperimentList(w.VBox):
    """The list (class ``eh-experiment-list``); ``rows`` maps names to :class:`ExperimentRow`;
    ``selected`` is the selected experiment's name (None when none)."""

    selected = traitlets.Unicode(None, allow_none=True)
    children: tuple[w.Widget, ...]  # VBox's trait, declared for mypy (ipywidgets is untyped)

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        self._lock = threading.RLock()
        self.rows: dict[str, ExperimentRow] = {}
        self.empty = w.HTML('<span class="eh-muted">No experiments yet: create one on the right.</span>')
        super().__init__([self.empty], layout=w.Layout(width="100%", overflow="auto", max_height="600px"))
        self.add_class("eh-experiment-list")
        self.observe(self._on_selected, "selected")
        self.reconcile()

    # -- following the hub ----------------------------------------------------------------------
    def update(self, name: str) -> None:
        """Add or refresh the row of ``name``, or drop it when the hub no longer has it."""
        try:
            self._hub.status(name)
        except ExperimentNotFound:
            self.remove(name)
            return
        row = self._row(name)
        with row.lock:
            try:
                status = self._hub.status(name)  # read again under the row's lock: the latest wins
            except ExperimentNotFound:
                self.remove(name)
                return
            row.show(status)

    def remove(self, name: str) -> None:
        with self._lock:
            row = self.rows.pop(name, None)
            if row is None:
                return
            self._layout_rows()
            if self.selected == name:
                self.selected = next(iter(self.rows), None)
        close_tree(row)

    def reconcile(self) -> None:
        """Match the rows to ``hub.experiments`` (missed events cannot leave the list wrong)."""
        names = list(self._hub.experiments)
        with self._lock:
            gone = [name for name in self.rows if name not in names]
        for name in gone:
            self.remove(name)
        for name in names:
            self.update(name)

    def _row(self, name: str) -> ExperimentRow:
        with self._lock:
            row = self.rows.get(name)
            if row is None:
                row = self.rows[name] = ExperimentRow(name, self.select)
                self._layout_rows()
            return row

    def _layout_rows(self) -> None:
        children = tuple(self.rows.values()) or (self.empty,)
        if self.children != children:
            self.children = children
        self._style_selection()

    # -- selection -------------------------------------------------------------------------------
    def select(self, name: str | None) -> None:
        self.selected = name

    def _on_selected(self, change: dict) -> None:
        self._style_selection()

    def _style_selection(self) -> None:
        with self._lock:
            for name, row in self.rows.items():
                style = "info" if name == self.selected else ""
                if row.name_button.button_style != style:
                    row.name_button.button_style = style
