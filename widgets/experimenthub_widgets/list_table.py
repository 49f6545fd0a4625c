"""The experiment list's table: what a row shows and the one widget drawing every row.

:class:`Row` is an experiment as the list draws it (from its status: the state, or ``queued`` for a
training waiting for a slot, the progress and a one-line detail); :func:`filter_rows` and
:func:`count_buckets` are the name and state filters and the counts per state. :class:`ListTable`
is an ``anywidget`` whose browser side (the JS and CSS below) builds an HTML table from the rows as
plain lists, redrawing only the rows that changed, and reports clicks (``selected``) and ticked
check boxes (``checked``). The list itself (:mod:`.experiment_list`) decides what to draw and when.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Any

import anywidget
import traitlets

from .style import STATE_COLORS

#: what the state filter offers; "queued" are trainings waiting for a slot (state training, stage queued)
STATE_FILTERS = ("all", "training", "queued", "ready", "failed", "stopped")
#: the order of the counts line
BUCKETS = ("training", "queued", "ready", "failed", "stopped")
QUEUED_COLOR = "#8250df"


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


def filter_rows(rows: Iterable[Row], state: str, text: str) -> list[Row]:
    """The rows the filters let through, in order: ``state`` a bucket (or ``all``), ``text`` as
    :func:`name_matcher` reads it."""
    match = name_matcher(text)
    return [row for row in rows if (state == "all" or row.bucket == state) and match(row.name)]


def count_buckets(rows: Iterable[Row]) -> dict[str, int]:
    """The rows per bucket, in the order of the counts line (a state added later still counts)."""
    counts = collections.Counter(row.bucket for row in rows)
    order = [*BUCKETS, *sorted(set(counts) - set(BUCKETS))]
    return {bucket: counts[bucket] for bucket in order if counts[bucket]}


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
