"""The experiments of the hub as one table that stays quick with hundreds of them.

One widget draws every row: :class:`ListTable`, an ``anywidget`` whose browser side builds an HTML
table from a list of plain rows (name, state, progress, detail). Clicking a row selects the
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

import collections
import dataclasses
import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import anywidget
import ipywidgets as w
import traitlets

from experimenthub.errors import ExperimentNotFound

from .background import Runner, Throttle, describe_error
from .style import STATE_COLORS, esc

log = logging.getLogger(__name__)

#: what the state filter offers; "queued" are trainings waiting for a slot (state training, stage queued)
STATE_FILTERS = ("all", "training", "queued", "ready", "failed", "stopped")
#: the order of the counts line
BUCKETS = ("training", "queued", "ready", "failed", "stopped")
QUEUED_COLOR = "#8250df"
#: rows drawn at first; "N more…" draws this many more each click
PAGE = 200


@dataclasses.dataclass(frozen=True)
class Row:
    """One experiment as the list last drew it (``ExperimentList.rows[name]``)."""

    name: str
    state: str  # the hub's state: created, training, ready, failed, stopped
    bucket: str  # what the list calls it: training, queued, ready, failed, stopped
    stage: str
    progress: float
    detail: str  # "queued #3", "fitting · local", the first line of an error, or the stage
    title: str  # the tooltip: type / model, and the whole error
    queue_position: int | None = None
    executor: str | None = None

    @classmethod
    def of(cls, status: Any) -> Row:
        stage = status.stage or ""
        state = status.state
        queued = state == "created" or (state == "training" and stage == "queued")
        bucket = "queued" if queued else state
        if queued:
            detail = queue_label(status.queue_position)
        elif state == "training":
            detail = " · ".join(part for part in (stage, status.executor) if part)
        elif state == "failed":
            lines = (status.error or "").strip().splitlines()
            detail = lines[0][:200] if lines else "failed"
        else:
            detail = stage
        title = f"{status.name}: {status.experiment_type} / {status.model_type}"
        if status.error:
            title += f"\n{status.error}"
        return cls(status.name, state, bucket, stage, float(status.progress or 0.0), detail, title,
                   status.queue_position, status.executor)

    def cells(self) -> list[Any]:
        """What the browser draws: [name, bucket, progress, detail, title]."""
        return [self.name, self.bucket, round(self.progress, 3), self.detail, self.title]


def queue_label(position: int | None) -> str:
    """``queued #1`` for the training that starts next (``queue_position`` 0: none ahead)."""
    return "queued" if position is None else f"queued #{position + 1}"


def name_matcher(text: str) -> Callable[[str], bool]:
    """Case-insensitive: a glob when ``text`` has ``*``, ``?`` or ``[``, else a substring."""
    text = text.strip().lower()
    if not text:
        return lambda name: True
    if any(char in text for char in "*?["):
        pattern = re.compile(fnmatch.translate(text))
        return lambda name: pattern.match(name.lower()) is not None
    return lambda name: text in name.lower()


_CSS = """
.eh-list-table .eh-list-scroll { max-height: 460px; overflow-y: auto; border: 1px solid #d0d7de;
                                 border-radius: 6px; }
.eh-list-table table { border-collapse: collapse; width: 100%; table-layout: fixed; font-size: 12px; }
.eh-list-table th { position: sticky; top: 0; z-index: 1; background: #f6f8fa; text-align: left;
                    font-weight: 600; padding: 2px 4px; border-bottom: 1px solid #d0d7de; }
.eh-list-table td { padding: 2px 4px; border-bottom: 1px solid #eaeef2; white-space: nowrap; overflow: hidden;
                    text-overflow: ellipsis; }
.eh-list-table col.eh-col-check { width: 24px; }
.eh-list-table col.eh-col-state { width: 66px; }
.eh-list-table col.eh-col-detail { width: 36%; }
.eh-list-table tr.eh-row { cursor: pointer; }
.eh-list-table tr.eh-row:hover { background: #f6f8fa; }
.eh-list-table tr.eh-row-selected, .eh-list-table tr.eh-row-selected:hover { background: #ddf4ff; }
.eh-list-table td.eh-row-name { color: #0969da; }
.eh-list-table tr.eh-row-selected td.eh-row-name { font-weight: 600; }
.eh-list-table .eh-row-state { display: inline-block; min-width: 50px; text-align: center; border-radius: 10px;
                               color: #fff; padding: 0 6px; font-size: 11px; background: #6e7781; }
.eh-list-table .eh-row-progress { display: block; height: 3px; background: #eaeef2; border-radius: 2px; }
.eh-list-table .eh-row-progress > span { display: block; height: 100%; border-radius: 2px; background: #6e7781; }
.eh-list-table .eh-row-stage { color: #57606a; }
.eh-list-table .eh-list-note { color: #57606a; padding: 6px; white-space: normal; }
""" + "".join(
    f".eh-list-table .eh-state-{state} {{ background: {color}; }}\n"
    f".eh-list-table .eh-bar-{state} {{ background: {color}; }}\n"
    for state, color in {**STATE_COLORS, "queued": QUEUED_COLOR}.items())

# The browser side: a <table> kept in step with the ``rows`` trait, at most once per animation
# frame. Rows whose cells did not change keep their <tr> (a redraw while a few of 500 train touches
# only those few); changed rows are parsed in one batch; clicks are delegated from the <tbody>.
_ESM = r"""
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
  .replace(/"/g, "&quot;");

function rowHtml([name, bucket, progress, detail, title], selected, checked) {
  const n = esc(name), b = esc(bucket);
  return '<tr class="eh-row' + (selected ? ' eh-row-selected' : '') + '" data-name="' + n + '">'
    + '<td><input type="checkbox" class="eh-row-check"' + (checked ? ' checked' : '') + '></td>'
    + '<td class="eh-row-name" title="' + esc(title) + '">' + n + '</td>'
    + '<td><span class="eh-row-state eh-state-' + b + '">' + b + '</span></td>'
    + '<td title="' + esc(detail) + '"><span class="eh-row-progress"><span class="eh-bar-' + b
    + '" style="width:' + Math.round(100 * progress) + '%"></span></span>'
    + '<span class="eh-row-stage">' + esc(detail) + '</span></td></tr>';
}

function render({ model, el }) {
  el.innerHTML = '<div class="eh-list-scroll"><table><colgroup><col class="eh-col-check"><col class="eh-col-name">'
    + '<col class="eh-col-state"><col class="eh-col-detail"></colgroup><thead><tr>'
    + '<th><input type="checkbox" class="eh-check-all" title="Check every row shown"></th>'
    + '<th>name</th><th>state</th><th>progress · queue · where</th></tr></thead><tbody></tbody></table></div>';
  const body = el.querySelector("tbody");
  const all = el.querySelector(".eh-check-all");
  const scratch = document.createElement("tbody");
  let drawn = new Map();  // name -> {key, tr}
  let pending = false;

  const draw = () => {
    pending = false;
    const start = performance.now();
    const rows = model.get("rows") || [];
    const selected = model.get("selected");
    const checked = new Set(model.get("checked") || []);
    const next = new Map(), fresh = [], html = [];
    for (const row of rows) {
      const name = row[0], isSelected = name === selected, isChecked = checked.has(name);
      const key = JSON.stringify(row) + (isSelected ? "S" : "") + (isChecked ? "C" : "");
      const old = drawn.get(name);
      if (old && old.key === key) {
        next.set(name, old);
      } else {
        const entry = { key, tr: null, old: old ? old.tr : null };
        next.set(name, entry);
        fresh.push(entry);
        html.push(rowHtml(row, isSelected, isChecked));
      }
    }
    if (fresh.length) {
      scratch.innerHTML = html.join("");
      const made = [...scratch.children];
      fresh.forEach((entry, i) => {
        entry.tr = made[i];
        if (entry.old && entry.old.parentNode === body) body.replaceChild(entry.tr, entry.old);  // in place
        entry.old = null;
      });
    }
    let node = body.firstChild;
    for (const entry of next.values()) {
      if (node === entry.tr) node = node.nextSibling;
      else body.insertBefore(entry.tr, node);
    }
    while (node) {  // rows gone, and the note
      const after = node.nextSibling;
      body.removeChild(node);
      node = after;
    }
    drawn = next;
    const note = model.get("note");
    if (!rows.length && note) {
      body.insertAdjacentHTML("beforeend", '<tr><td colspan="4" class="eh-list-note">' + esc(note) + '</td></tr>');
    }
    all.checked = rows.length > 0 && rows.every((r) => checked.has(r[0]));
    el.dataset.drawMs = (performance.now() - start).toFixed(2);  // read by benchmarks
    el.dataset.redrawn = String(fresh.length);
  };
  const schedule = () => {
    if (!pending) {
      pending = true;
      requestAnimationFrame(draw);
    }
  };

  body.addEventListener("click", (event) => {
    const row = event.target.closest("tr.eh-row");
    if (!row) return;
    const name = row.dataset.name;
    if (event.target.classList.contains("eh-row-check")) {
      const checked = new Set(model.get("checked") || []);
      if (event.target.checked) checked.add(name); else checked.delete(name);
      model.set("checked", [...checked]);
    } else {
      model.set("selected", name);
    }
    model.save_changes();
  });
  all.addEventListener("change", () => {
    model.set("checked", all.checked ? (model.get("rows") || []).map((r) => r[0]) : []);
    model.save_changes();
  });
  const events = ["change:rows", "change:selected", "change:checked", "change:note"];
  for (const name of events) model.on(name, schedule);
  draw();
  return () => { for (const name of events) model.off(name, schedule); };
}

export default { render };
"""


class ListTable(anywidget.AnyWidget):
    """The rows drawn in the browser (class ``eh-list-table``). ``rows``: the shown rows as
    ``[name, bucket, progress, detail, title]``; ``selected``: the clicked name; ``checked``: the
    names whose check box is ticked; ``note``: shown when there are no rows."""

    _esm = _ESM
    _css = _CSS
    rows = traitlets.List(traitlets.List(), []).tag(sync=True)
    selected = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    checked = traitlets.List(traitlets.Unicode(), []).tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)


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
            counts = collections.Counter(row.bucket for row in rows.values())
            state, match = self.state_filter.value, name_matcher(self.filter.value)
            matching = [row for row in rows.values() if (state == "all" or row.bucket == state) and match(row.name)]
            shown = matching[:self._limit]
            with self._lock:
                self.rows = rows
                self.visible = [row.name for row in shown]
                self.matching = len(matching)
                order = [*BUCKETS, *sorted(set(counts) - set(BUCKETS))]  # a state added later still counts
                self.counts = {bucket: counts[bucket] for bucket in order if counts[bucket]}
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
