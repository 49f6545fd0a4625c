"""The create form's setup columns: one picker per setup key the experiment type declares
(``ExperimentType.setup_keys``), offering the columns of the chosen data.

``features`` is a list of columns, any other key one column. A key the type fills in when it is
left out (its ``parse_config`` of an empty setup says so) always names a column; the others may be
``(none)``. ``ds`` prefers a time column, ``target`` offers the numeric columns but the time, and
``target`` and ``features`` leave out the columns picked for other keys. Types that declare no setup
keys are set up in the JSON editor. The form (:mod:`.create_form`) writes the picks into the
config's ``setup`` and shows a config's ``setup`` here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import ipywidgets as w

from .lifecycle import Quiet

NONE = "(none)"
#: descriptions of the pickers of well-known setup keys (others show the key itself)
LABELS = {"ds": "Time (ds)", "target": "Target", "label": "Label", "features": "Features"}


def setup_keys(cls: Any) -> tuple[str, ...]:
    """The setup keys the form offers pickers for: the type's ``setup_keys``, each once."""
    keys = getattr(cls, "setup_keys", ()) or ()
    if isinstance(keys, str):
        keys = (keys,)
    try:
        return tuple(dict.fromkeys(k for k in keys if isinstance(k, str) and k))
    except TypeError:
        return ()


def setup_defaults(cls: Any) -> dict[str, Any]:
    """What the type puts in ``setup`` when it is empty (``parse_config``): keys found there always
    name a column. Empty when the type needs some setup key (or anything else) to parse."""
    models = tuple(getattr(cls, "model_types", ()) or ())
    try:
        config = cls.parse_config({"setup": {}, "create_model": {"model_type": models[0] if models else "",
                                                                 "params": {}}})
        setup = config.get("setup")
    except Exception:
        return {}
    return dict(setup) if isinstance(setup, Mapping) else {}


def wrap() -> w.Layout:
    """The layout of a row of inputs that wraps onto more lines when the page is narrow."""
    return w.Layout(flex_flow="row wrap", align_items="flex-start", width="100%")


class SetupColumns:
    """``pickers`` (the column picker of each setup key: ``ds``, ``target``, ``label``, ``features``,
    and one made for any other key a type declares, CSS class ``eh-create-<key>``), ``box`` (VBox,
    class ``eh-create-setup``: the current type's pickers), ``frame`` (the data whose columns they
    offer). ``quiet`` and ``lock`` are the form's; ``on_change`` is called after a user's pick."""

    def __init__(self, quiet: Quiet, lock: AbstractContextManager[Any], on_change: Callable[[], None]) -> None:
        self._quiet, self._lock, self._on_change = quiet, lock, on_change
        self.frame: Any = None
        self.keys: tuple[str, ...] = ()  # the current type's setup keys
        self._defaults: dict[str, Any] = {}  # and what it fills in for an empty setup

        picker = {"layout": w.Layout(width="300px")}
        self.ds = w.Dropdown(options=[], description="Time (ds)", **picker)
        self.ds.add_class("eh-create-ds")
        self.target = w.Dropdown(options=[], description="Target", **picker)
        self.target.add_class("eh-create-target")
        self.label = w.Dropdown(options=[NONE], description="Label", tooltip="a 0/1 fault column, for metrics only",
                                **picker)
        self.label.add_class("eh-create-label")
        self.features = w.SelectMultiple(options=[], description="Features", rows=6,
                                         layout=w.Layout(width="300px"))
        self.features.add_class("eh-create-features")
        self.features_hint = w.HTML('<span class="eh-muted">none selected: every numeric column but the ones '
                                    "picked beside it</span>")
        self.pickers: dict[str, w.Widget] = {"ds": self.ds, "target": self.target, "label": self.label,
                                             "features": self.features}
        self.box = w.VBox(layout=w.Layout(width="100%"))
        self.box.add_class("eh-create-setup")
        for widget in self.pickers.values():
            widget.observe(self._changed, "value")

    def set_type(self, cls: Any) -> None:
        """Offer the pickers of type ``cls`` (None: a type the hub does not know, JSON only)."""
        keys = setup_keys(cls) if cls is not None else ()
        self.keys, self._defaults = keys, (setup_defaults(cls) if keys else {})
        self.box.children = self._children()

    def picker(self, key: str) -> w.Widget:
        """The picker of ``key``, made on first use for a key other than the well-known ones."""
        widget = self.pickers.get(key)
        if widget is None:
            widget = w.Dropdown(options=[NONE], description=LABELS.get(key, key), layout=w.Layout(width="300px"))
            widget.add_class(f"eh-create-{re.sub(r'[^A-Za-z0-9_-]', '_', key)}")
            widget.observe(self._changed, "value")
            self.pickers[key] = widget
        return widget

    def write(self, setup: dict[str, Any]) -> None:
        """Put the picked columns into ``setup``; keys picked as ``(none)`` leave it."""
        for key in self.keys:
            value = self.picker(key).value
            if key == "features":
                value = list(value) or None
            if key == "label" and "target" not in self.keys:
                setup.pop("target", None)  # 'target' is an alias of 'label' there (fault detection)
            if value in (None, NONE, ""):
                setup.pop(key, None)
            else:
                setup[key] = value

    def _default(self, key: str) -> str | None:
        value = self._defaults.get(key)
        return value if isinstance(value, str) and value else None

    def _children(self) -> tuple:
        keys = self.keys
        if not keys:
            return (w.HTML('<span class="eh-muted">Set this type\'s columns in the JSON config.</span>'),)
        singles = [self.picker(k) for k in keys if k != "features"]
        children: list[w.Widget] = [w.HBox(singles, layout=wrap())] if singles else []
        if "features" in keys:
            children.append(w.HBox([self.features, self.features_hint], layout=wrap()))
        return tuple(children)

    def show(self, setup: dict[str, Any], keep: bool) -> None:
        """Offer the data's columns in the pickers and select the config's columns: as they are with
        ``keep`` (the JSON says so), else only those the data has, others replaced by defaults.

        ``ds`` prefers a time column, ``target`` offers the numeric columns but the time, ``features``
        the numeric columns not picked for another key; a key the type fills in itself starts at the
        type's default and never offers ``(none)``."""
        frame = self.frame
        columns = [str(c) for c in frame.columns] if frame is not None else []
        numeric = _numeric(frame) if frame is not None else []
        times = _datetime_like(frame) if frame is not None else []
        keys = self.keys

        def pick(value: Any, preferred: list[str], fallback: str) -> str:
            if isinstance(value, str) and value and (keep or not columns or value in columns):
                return value
            return next((c for c in preferred if c in columns), fallback)

        picked: dict[str, str] = {}
        with self._quiet:
            for key in sorted((k for k in keys if k != "features"), key=lambda k: k != "ds"):  # ds first
                default = self._default(key)
                value = setup.get(key)
                if key == "label" and not value and "target" not in keys:
                    value = setup.get("target")  # the alias fault detection accepts
                options = [c for c in numeric if c != picked.get("ds")] if key == "target" else columns
                preferred = [default] if default else []
                if key == "ds":
                    preferred += ["ds", *times]
                elif key == "target":
                    preferred += ["y"]
                if default:  # the type always sets this key: pick some column rather than none
                    preferred += options
                picked[key] = pick(value, preferred, default or NONE)
                _offer(self.picker(key), options if default else [NONE, *options], picked[key])
            if "features" in keys:
                taken = set(picked.values())
                options = [c for c in numeric if c not in taken]
                chosen = [f for f in (setup.get("features") or []) if isinstance(f, str) and f not in taken
                          and (keep or f in options)]
                options += [f for f in chosen if f not in options]
                if list(self.features.options) != options:
                    self.features.options = options
                if tuple(self.features.value) != tuple(chosen):
                    self.features.value = tuple(chosen)

    def _changed(self, change: dict) -> None:
        if self._quiet:
            return
        if change["owner"] is not self.features and any(k in self.keys for k in ("target", "features")):
            with self._lock:  # target and features leave out the columns picked for other keys
                setup = {k: (list(self.features.value) if k == "features" else self.picker(k).value)
                         for k in self.keys}
                self.show(setup, keep=True)
        self._on_change()


def _numeric(frame: Any) -> list[str]:
    import pandas as pd

    return [str(c) for c in frame.columns
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]


def _datetime_like(frame: Any) -> list[str]:
    import pandas as pd

    return [str(c) for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]


def _offer(dropdown: w.Dropdown, options: list[str], value: str) -> None:
    options = list(options)
    if value not in options:
        options.append(value)
    if list(dropdown.options) != options:
        dropdown.options = options
    if dropdown.value != value:
        dropdown.value = value
