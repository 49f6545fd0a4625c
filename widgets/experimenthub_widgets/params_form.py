"""A form generated from an experiment type's ``model_parameters(model_type)`` (a list of ParamSpec).

One widget per parameter: IntText / FloatText / Checkbox / Dropdown / Text by the spec's kind
(``int``, ``float``, ``bool``, ``choice``, ``str``; ``json`` and parameters whose default is None
take a Text holding JSON, empty meaning the default). ``value`` holds only the parameters that
differ from their defaults, so a config stays short and the model's own defaults apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .lifecycle import Quiet
from .style import esc

#: a Dropdown's value None means "nothing selected", so a default of None is shown as this choice
NONE_CHOICE = "(default: none)"


def _label(value: Any) -> str:
    return NONE_CHOICE if value is None else str(value)


def _choice(value: Any) -> Any:
    return NONE_CHOICE if value is None else value


class ParamsForm(w.VBox):
    """``widgets`` maps parameter names to their input widgets (CSS class ``eh-param-<name>``)."""

    def __init__(self, specs: list[Any] | None = None) -> None:
        super().__init__(layout=w.Layout(width="100%"))
        self.add_class("eh-create-params")
        self.specs: dict[str, Any] = {}
        self.widgets: dict[str, w.Widget] = {}
        self.problems: dict[str, str] = {}
        self.unshown: dict[str, Any] = {}  # values from the JSON that a widget cannot hold
        self._callbacks: list[Callable[[], None]] = []
        self._quiet = Quiet()
        self.note = w.HTML()
        self._grid = w.GridBox(layout=w.Layout(grid_template_columns="repeat(auto-fill, minmax(250px, 1fr))",
                                               grid_gap="2px 12px", width="100%"))
        self._empty = w.HTML('<span class="eh-muted">This model has no parameters to set here; use the JSON '
                             "editor.</span>")
        #: (parameter, widget shown under its input), see attach()
        self.attached: tuple[str | None, w.Widget | None] = (None, None)
        self._wrappers: list[w.Widget] = []
        self.set_specs(specs or [])

    # -- building ---------------------------------------------------------------------------
    def set_specs(self, specs: list[Any]) -> None:
        old = list(self.widgets.values())
        self.specs = {spec.name: spec for spec in specs}
        self.widgets = {spec.name: self._widget(spec) for spec in specs}
        self.problems, self.unshown = {}, {}
        for widget in self.widgets.values():
            widget.observe(self._changed, "value")
        self.attached = (None, None)
        self._arrange()
        self.children = (self._grid if specs else self._empty, self.note)
        for widget in old:
            widget.close()

    def attach(self, name: str | None, widget: w.Widget | None) -> None:
        """Show ``widget`` right under the input of parameter ``name`` (a hint about its value);
        ``attach(None, None)`` removes it."""
        wanted = (name, widget) if name in self.widgets and widget is not None else (None, None)
        if wanted != self.attached:
            self.attached = wanted
            self._arrange()

    def _arrange(self) -> None:
        name, extra = self.attached
        old, self._wrappers = self._wrappers, []
        cells: list[w.Widget] = []
        for key, widget in self.widgets.items():
            if key == name and extra is not None:
                box = w.VBox([widget, extra], layout=w.Layout(width="auto"))
                self._wrappers.append(box)
                cells.append(box)
            else:
                cells.append(widget)
        self._grid.children = cells
        for box in old:  # the box only: its input and the hint live on
            w.Widget.close(box)

    def _widget(self, spec: Any) -> w.Widget:
        common = {"description": spec.name, "tooltip": spec.help or spec.name,
                  "style": {"description_width": "150px"}, "layout": w.Layout(width="auto")}
        default = spec.default
        if spec.kind == "choice":
            options = [(_label(c), _choice(c)) for c in spec.choices]
            if not any(_same(default, c) for c in spec.choices):
                options.insert(0, (_label(default), _choice(default)))
            widget: w.Widget = w.Dropdown(options=options, value=_choice(default), **common)
        elif spec.kind == "bool" and isinstance(default, bool):
            widget = w.Checkbox(value=default, indent=False, **{**common, "description": spec.name})
        elif spec.kind == "int" and isinstance(default, int):
            widget = w.IntText(value=default, **common)
        elif spec.kind == "float" and isinstance(default, int | float):
            widget = w.FloatText(value=float(default), **common)
        elif spec.kind == "str" and isinstance(default, str):
            widget = w.Text(value=default, **common)
        else:  # json, or a default of None: JSON text, empty = default
            widget = w.Text(value="" if default is None else json.dumps(default), placeholder="default", **common)
            widget.is_json = True
        widget.add_class(f"eh-param-{spec.name}")
        return widget

    # -- values -----------------------------------------------------------------------------
    @property
    def value(self) -> dict[str, Any]:
        """The parameters that differ from their defaults (those whose JSON does not parse are
        left out and listed in ``problems``)."""
        params, problems = {}, {}
        for name, widget in self.widgets.items():
            spec = self.specs[name]
            raw = widget.value
            if isinstance(widget, w.Dropdown) and raw == NONE_CHOICE:
                raw = None
            if getattr(widget, "is_json", False):
                if raw.strip() == "":
                    continue
                try:
                    raw = json.loads(raw)
                except ValueError as exc:
                    problems[name] = f"{name}: not JSON ({exc.args[0].split(':')[0]})"
                    continue
            if not _same(raw, spec.default):
                params[name] = raw
        params.update(self.unshown)
        self.problems = problems
        self._show_note()
        return params

    def _show_note(self) -> None:
        parts = [f'<span class="eh-health-detail">{esc(text)}</span>' for text in self.problems.values()]
        parts += [f'<span class="eh-muted">{esc(name)} = {esc(json.dumps(value, default=str))} (from the JSON '
                  "config)</span>" for name, value in self.unshown.items()]
        note = "<br>".join(parts)
        if self.note.value != note:
            self.note.value = note

    def set_values(self, params: dict[str, Any]) -> dict[str, Any]:
        """Show ``params`` in the form (others back to their defaults); returns those it cannot
        show (unknown names), which stay in the JSON editor only."""
        leftover = {k: v for k, v in params.items() if k not in self.widgets}
        unshown: dict[str, Any] = {}
        with self._quiet:
            for name, widget in self.widgets.items():
                spec = self.specs[name]
                value = params.get(name, spec.default)
                if getattr(widget, "is_json", False):
                    text = "" if value is None else json.dumps(value)
                    if widget.value != text:
                        widget.value = text
                elif isinstance(widget, w.Dropdown):
                    value = _choice(value)
                    if not any(_same(value, v) for _, v in widget.options):
                        widget.options = [*widget.options, (_label(value), value)]
                    if not _same(widget.value, value):
                        widget.value = value
                elif _fits(widget, value):
                    if widget.value != value:
                        widget.value = value
                else:  # a value the widget cannot hold (e.g. 0.5 for an IntText): JSON only
                    unshown[name] = value
                    if not _same(widget.value, spec.default):
                        widget.value = spec.default
        self.unshown = unshown
        self._show_note()
        return {**leftover, **unshown}

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def _changed(self, change: dict) -> None:
        if self._quiet:
            return
        for name, widget in self.widgets.items():
            if widget is change["owner"] and name in self.unshown:
                self.unshown = {k: v for k, v in self.unshown.items() if k != name}  # the user chose anew
        for callback in self._callbacks:
            callback()


def _same(a: Any, b: Any) -> bool:
    """Equal with the type kept apart for booleans (``True`` is not ``1`` for a parameter)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


def _fits(widget: w.Widget, value: Any) -> bool:
    if isinstance(widget, w.Checkbox):
        return isinstance(value, bool)
    if isinstance(widget, w.IntText):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(widget, w.FloatText):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)
