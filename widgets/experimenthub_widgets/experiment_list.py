"""The experiments of the hub as one table that stays quick with hundreds of them.

One widget draws every row: :class:`~.list_table.ListTable`, an ``anywidget`` whose browser side
builds an HTML table from a list of plain rows (name, state, progress, detail). Clicking a row selects the
experiment (the overview shows it); the check boxes pick experiments for "Stop selected" /
"Delete selected". Above the table: a name filter (text or glob), a state filter and the counts per
state; below it, "N more…" when more rows match than are shown.

Drawing is coalesced: hub events (from any thread, hundreds per second when many experiments
train) only call :meth:`ExperimentList.request`, and one :class:`~.background.Throttle` thread
renders from a fresh snapshot of every status: the first event after a quiet spell at once, then
after a pause of 25 times the last render's duration, at least 0.1 s and at most 1 s (a handful of
experiments: up to 10 renders a second; 500: about 4). A render reads each status anew, so events
handled out of order, or missed, never leave a row wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as w
import traitlets

from experimenthub.errors import ExperimentNotFound

from .background import Runner, Throttle, describe_error
from .list_table import STATE_FILTERS, ListTable, Row, count_buckets, filter_rows
from .style import esc

log = logging.getLogger(__name__)

#: rows drawn at first; "N more…" draws this many more each click
PAGE = 200


class ExperimentList(w.VBox):
    """The list (class ``eh-experiment-list``).

    ``rows`` maps every experiment's name to its :class:`Row` as last drawn (filtered or not);
    ``visible`` lists the names drawn, in order; ``counts`` the experiments per state (all of
    them); ``selected`` is the selected experiment's name (None when none); ``checked`` the names
    ticked for the bulk actions. ``request()`` asks for a redraw (any thread, returns at once);
    ``render()`` redraws now, in the calling thread.
    """

    selected = traitlets.Unicode(None, allow_none=True)
    children: tuple[w.Widget, ...]  # VBox's trait, declared for mypy (ipywidgets is untyped)

    def __init__(self, hub: Any, runner: Runner | None = None, on_message: Callable[[str], None] | None = None,
                 interval: float = 0.1, max_interval: float = 1.0, page: int = PAGE) -> None:
        self._hub = hub
        self._runner = runner or Runner(lambda text: log.warning("%s", text))
        self._on_message = on_message or (lambda text: None)
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._actions_lock = threading.RLock()
        self.page = int(page)
        self._limit = self.page
        self.rows: dict[str, Row] = {}
        self.visible: list[str] = []
        self.matching = 0  # rows the filters let through (drawn or behind "more")
        self.counts: dict[str, int] = {}
        self.rendered_at = 0.0  # time.perf_counter() when the last render ended (benchmarks)
        self._confirm_delete = False

        self.filter = w.Text(placeholder="filter: name, or a glob like sales-*", continuous_update=True,
                             layout=w.Layout(width="100%"))
        self.filter.add_class("eh-list-filter")
        self.state_filter = w.ToggleButtons(options=STATE_FILTERS, value="all",
                                            style={"button_width": "auto"},
                                            layout=w.Layout(width="100%"))
        self.state_filter.add_class("eh-list-state")
        self.count_line = w.HTML()
        self.count_line.add_class("eh-list-counts")
        self.table = ListTable(layout=w.Layout(width="100%"))
        self.table.add_class("eh-list-table")
        self.shown_line = w.HTML()
        self.shown_line.add_class("eh-list-shown")
        self.more = w.Button(description="more…", layout=w.Layout(width="auto", display="none"))
        self.more.add_class("eh-list-more")
        self.stop_checked = w.Button(description="Stop selected", icon="stop", button_style="warning", disabled=True,
                                     tooltip="Stop the trainings of the checked experiments (queued ones too)",
                                     layout=w.Layout(width="auto"))
        self.stop_checked.add_class("eh-stop-selected")
        self.delete_checked = w.Button(description="Delete selected", icon="trash", button_style="danger",
                                       disabled=True, layout=w.Layout(width="auto"),
                                       tooltip="Remove the checked experiments from the hub (two clicks; their "
                                               "MLflow runs stay)")
        self.delete_checked.add_class("eh-delete-selected")
        super().__init__([
            self.filter, self.state_filter, self.count_line, self.table,
            w.HBox([self.shown_line, self.more], layout=w.Layout(align_items="center", grid_gap="8px")),
            w.HBox([self.stop_checked, self.delete_checked],
                   layout=w.Layout(flex_flow="row wrap", grid_gap="4px", margin="4px 0")),
        ], layout=w.Layout(width="100%"))
        self.add_class("eh-experiment-list")

        traitlets.link((self, "selected"), (self.table, "selected"))
        self.filter.observe(self._filters_changed, "value")
        self.state_filter.observe(self._filters_changed, "value")
        self.more.on_click(self._more)
        self.table.observe(self._checked_changed, "checked")
        self.stop_checked.on_click(self._stop_checked)
        self.delete_checked.on_click(self._delete_checked)
        self._throttle = Throttle("experiment-list", self.render, self._render_failed, interval, max_interval)
        self.render()

    # -- following the hub (any thread) ----------------------------------------------------------
    def request(self) -> None:
        """Redraw soon: at once when idle, else once the throttle's pause is over."""
        self._throttle.request()

    def update(self, name: str | None = None) -> None:
        """An experiment changed (kept for callers of the per-row list): redraw soon."""
        self.request()

    def reconcile(self) -> None:
        """Match the rows to ``hub.experiments`` now (kept for callers of the per-row list)."""
        self.render()

    def remove(self, name: str) -> None:
        """``name`` left the hub: its row goes now; the selection moves on if it was selected."""
        with self._lock:
            self.rows = {key: row for key, row in self.rows.items() if key != name}
            successor = self._successor({name}) if self.selected == name else None
            move = self.selected == name
        if move:
            self.selected = successor
        self.request()

    @property
    def renders(self) -> int:
        """How many throttled redraws ran (benchmarks)."""
        return self._throttle.runs

    @property
    def pending(self) -> bool:
        """A throttled redraw is running or due."""
        return self._throttle.pending

    def stop(self) -> None:
        """Redraw no more (the panel is closing); the widgets stay until closed."""
        self._throttle.close()

    def render(self) -> None:
        """Redraw from a snapshot of every status, taken now (the newest snapshot is drawn last)."""
        with self._render_lock:
            rows: dict[str, Row] = {}
            for name in list(self._hub.experiments):
                try:
                    rows[name] = Row.of(self._hub.status(name))
                except ExperimentNotFound:  # deleted since the snapshot of names
                    continue
            counts = count_buckets(rows.values())
            matching = filter_rows(rows.values(), self.state_filter.value, self.filter.value)
            shown = matching[:self._limit]
            with self._lock:
                self.rows = rows
                self.visible = [row.name for row in shown]
                self.matching = len(matching)
                self.counts = counts
                selected = self.selected
            self._draw(shown, rows)
            self.rendered_at = time.perf_counter()
            if selected is not None and selected not in rows and selected not in self._hub.experiments:
                # gone, not merely newer than the snapshot: the selection moves on
                successor = self._successor({selected})
                with self._lock:
                    move = self.selected == selected
                if move:
                    self.selected = successor

    def _draw(self, shown: list[Row], rows: dict[str, Row]) -> None:
        cells = [row.cells() for row in shown]
        if self.table.rows != cells:
            self.table.rows = cells
        note = ("No experiments yet: create one on the right." if not rows else
                "No experiment matches the filter." if not shown else "")
        if self.table.note != note:
            self.table.note = note
        counts = self.counts
        parts = [f'<span class="eh-count eh-count-{bucket}">{esc(bucket)} {counts[bucket]}</span>'
                 for bucket in counts]
        line = (f'<span class="eh-muted">{len(rows)} experiment{"" if len(rows) == 1 else "s"}'
                + (": " if parts else "") + "</span>" + " · ".join(parts)) if rows else ""
        if self.count_line.value != line:
            self.count_line.value = line
        hidden = self.matching - len(shown)
        shown_text = (f'<span class="eh-muted">showing {len(shown)} of {self.matching}</span>' if hidden > 0
                      else "")
        if self.shown_line.value != shown_text:
            self.shown_line.value = shown_text
        more = f"{min(self.page, hidden)} more…" if hidden > 0 else "more…"
        if self.more.description != more:
            self.more.description = more
        display = None if hidden > 0 else "none"
        if self.more.layout.display != display:
            self.more.layout.display = display
        visible = set(self.visible)
        checked = list(self.table.checked)
        keep = [name for name in checked if name in visible]  # acting on rows one cannot see would surprise
        if keep != checked:
            self.table.checked = keep
        else:
            self._sync_actions()

    def _render_failed(self, exc: BaseException) -> None:
        log.warning("drawing the experiment list failed: %s", describe_error(exc))

    def _successor(self, leaving: set[str]) -> str | None:
        """The experiment to select instead of one leaving: the first one drawn, else any."""
        experiments = self._hub.experiments
        for name in (*self.visible, *self.rows):
            if name not in leaving and name in experiments:
                return name
        return None

    # -- filters ---------------------------------------------------------------------------------
    def _filters_changed(self, change: dict) -> None:
        self._limit = self.page
        self.request()

    def _more(self, _: Any = None) -> None:
        self._limit += self.page
        self.request()

    # -- selection -------------------------------------------------------------------------------
    def select(self, name: str | None) -> None:
        self.selected = name

    @property
    def checked(self) -> tuple[str, ...]:
        return tuple(self.table.checked)

    def check(self, names: Iterable[str]) -> None:
        """Tick ``names`` (as clicking their check boxes does); only drawn rows can be ticked."""
        visible = set(self.visible)
        self.table.checked = [name for name in names if name in visible]

    def _checked_changed(self, change: dict) -> None:
        self._confirm_delete = False
        self._sync_actions()

    def _sync_actions(self) -> None:
        """Label and enable the bulk buttons by the checked rows (the render thread, an action's
        thread and the kernel all call this: one at a time, so the last call's count is the one shown)."""
        with self._actions_lock:
            count = len(self.table.checked)
            for button, verb in ((self.stop_checked, "Stop"), (self.delete_checked, "Delete")):
                if button.description.endswith("…"):
                    continue  # its action runs; the runner restores it, then calls this again
                description = f"{verb} selected ({count})" if count else f"{verb} selected"
                if button is self.delete_checked and self._confirm_delete:
                    description = f"Click again to delete {count}"
                if button.description != description:
                    button.description = description
                if button.disabled != (count == 0):
                    button.disabled = count == 0

    # -- bulk actions (each returns at once; the hub calls run in a background thread) ---------------
    def _stop_checked(self, _: Any = None) -> None:
        names = self.checked
        if not names:
            return

        def work() -> tuple[int, int]:
            stopped = 0
            for name in names:
                try:
                    stopped += bool(self._hub.stop_training(name))
                except ExperimentNotFound:
                    pass
            return stopped, len(names)

        def done(result: tuple[int, int]) -> None:
            stopped, asked = result
            rest = asked - stopped
            self._on_message(f"Stopped {stopped} training{'' if stopped == 1 else 's'}"
                             + (f" ({rest} of the selected were not training)" if rest else ""))

        self._runner.run("Stopping…", work, done=done, button=self.stop_checked, after=self._sync_actions)

    def _delete_checked(self, _: Any = None) -> None:
        names = self.checked
        if not names:
            return
        if not self._confirm_delete:
            self._confirm_delete = True
            self._sync_actions()
            return
        self._confirm_delete = False
        leaving = set(names)
        if self.selected in leaving:  # move the selection once, not once per deletion event
            self.selected = self._successor(leaving)

        def work() -> int:
            deleted = 0
            for name in names:
                try:
                    self._hub.delete(name)
                    deleted += 1
                except ExperimentNotFound:
                    pass
            return deleted

        self._runner.run("Deleting…", work, button=self.delete_checked, after=self._sync_actions,
                         done=lambda deleted: self._on_message(
                             f"Deleted {deleted} experiment{'' if deleted == 1 else 's'} (their MLflow runs stay)"))
