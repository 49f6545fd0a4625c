"""The create form's anomaly setting and, next to it, the expected false-alarm rate it gives.

A type says what share of normal rows its anomaly rule flags under a config
(``ExperimentType.expected_false_alarm_rate(config)``; None when it cannot say). The form shows that
share beside the setting it follows, in the same words for every type ("expected false alarms ≈ 1 %
of normal points"), updated on every edit of the form or of the JSON:

* a type whose config has an anomaly band (``anomaly.interval_width``, as ``time_series``) gets an
  input for it (class ``eh-create-anomaly-width``) with the rate beside it;
* otherwise the rate sits under the model parameter that sets the alarm limit: ``contamination``
  when the config sets it, else ``confidence`` (``fault_detection``);
* any other type that can say a rate shows it under the model parameters.

A config the type refuses shows the type's own message in place of the rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from .lifecycle import Quiet
from .params_form import ParamsForm
from .style import attr, esc

#: model parameters that set an alarm limit, the one the config sets first
LIMIT_PARAMS = ("contamination", "confidence")
TOOLTIP = ("The share of normal points the anomaly rule flags on data the model fits (the type's "
           "expected_false_alarm_rate of this config)")


def band_default(cls: Any) -> float | None:
    """The type's default ``anomaly.interval_width`` (its ``parse_config`` of a minimal config fills it
    in); None when its config has no anomaly band."""
    models = tuple(getattr(cls, "model_types", ()) or ())
    try:
        config = cls.parse_config({"setup": {}, "create_model": {"model_type": models[0] if models else "",
                                                                 "params": {}}})
        width = (config.get("anomaly") or {}).get("interval_width")
    except Exception:
        return None
    return float(width) if isinstance(width, int | float) and not isinstance(width, bool) else None


def rate_text(rate: float | None) -> str:
    """``expected false alarms ≈ 1 % of normal points`` (the words every type's hint uses)."""
    if rate is None:
        return "expected false alarms: unknown with these settings"
    percent = 100 * float(rate)
    shown = f"{percent:.2g}" if percent >= 0.01 else "< 0.01"
    return f"expected false alarms ≈ {shown} % of normal points"


class AnomalySetting:
    """``width`` (FloatText, the band's ``anomaly.interval_width``), ``hint`` (HTML, class
    ``eh-false-alarm``: the expected rate, or why it cannot be told), ``box`` (the band's row, or the
    hint alone for a type that has no band nor limit parameter; hidden when empty)."""

    def __init__(self, params: ParamsForm, on_change: Callable[[], None]) -> None:
        self._params = params
        self._quiet = Quiet()
        self._default: float | None = None  # the band's default; None: the type has no band
        self.rate: float | None = None  # the last rate shown (None: unknown or refused)
        self.width = w.FloatText(value=0.99, step=0.005, description="Anomaly band",
                                 tooltip="anomaly.interval_width: the share of normal points inside the band "
                                         "(actuals outside it are anomalies); not Prophet's forecast interval",
                                 style={"description_width": "initial"}, layout=w.Layout(width="190px"))
        self.width.add_class("eh-create-anomaly-width")
        self.hint = w.HTML()
        self.hint.add_class("eh-false-alarm")
        self.box = w.HBox([], layout=w.Layout(align_items="center", grid_gap="10px", display="none"))
        self.box.add_class("eh-create-anomaly")
        self.width.observe(lambda change: None if self._quiet else on_change(), "value")

    @property
    def has_band(self) -> bool:
        return self._default is not None

    def set_type(self, cls: Any) -> None:
        """A new type (or none): does its config have an anomaly band?"""
        self._default = band_default(cls) if cls is not None else None
        if self._default is not None:
            self._set_width(self._default)

    # -- config <-> form ---------------------------------------------------------------------------
    def to_config(self, config: dict[str, Any]) -> None:
        """Write the band into ``config`` (left out while it is the default the JSON does not name)."""
        if self._default is None:
            return
        anomaly = dict(config["anomaly"]) if isinstance(config.get("anomaly"), Mapping) else {}
        value = float(self.width.value)
        if value == self._default and "interval_width" not in anomaly:
            return
        anomaly["interval_width"] = value
        config["anomaly"] = anomaly

    def from_config(self, config: Mapping[str, Any]) -> None:
        """Show the config's band (the default when it names none)."""
        if self._default is None:
            return
        anomaly = config.get("anomaly")
        width = anomaly.get("interval_width") if isinstance(anomaly, Mapping) else None
        if width is None:
            width = self._default
        if isinstance(width, int | float) and not isinstance(width, bool):
            self._set_width(float(width))

    def _set_width(self, value: float) -> None:
        with self._quiet:
            if self.width.value != value:
                self.width.value = value

    # -- the rate ----------------------------------------------------------------------------------
    def update(self, cls: Any, config: Mapping[str, Any]) -> None:
        """Show the rate ``config`` gives, next to the setting it follows."""
        text, rate = self._describe(cls, config)
        self.rate = rate
        if self.hint.value != text:
            self.hint.value = text
        self._place(config, bool(text))

    def _describe(self, cls: Any, config: Mapping[str, Any]) -> tuple[str, float | None]:
        if cls is None:
            return "", None
        try:
            rate = cls.expected_false_alarm_rate(dict(config))
        except Exception as exc:  # InvalidConfig above all: the type says what is wrong
            if not self.has_band and not self._limit_param(config):
                return "", None  # nothing here follows the rate: the JSON status tells the error
            return f'<span class="eh-health-detail">expected false alarms: unknown ({esc(exc)})</span>', None
        if rate is None and not self.has_band and not self._limit_param(config):
            return "", None  # a type that never says
        return f'<span class="eh-muted" title="{attr(TOOLTIP)}">{esc(rate_text(rate))}</span>', rate

    def _limit_param(self, config: Mapping[str, Any]) -> str | None:
        """The model parameter the rate follows, when the form shows one."""
        widgets = self._params.widgets
        create = config.get("create_model")
        params = create.get("params") if isinstance(create, Mapping) else None
        params = params if isinstance(params, Mapping) else {}
        for name in LIMIT_PARAMS:
            if name in widgets and params.get(name) is not None:
                return name
        return next((name for name in reversed(LIMIT_PARAMS) if name in widgets), None)

    def _place(self, config: Mapping[str, Any], shown: bool) -> None:
        if self.has_band:
            self._params.attach(None, None)
            children: tuple[w.Widget, ...] = (self.width, self.hint)
        else:
            target = self._limit_param(config)
            self._params.attach(target, self.hint if target else None)
            children = () if target or not shown else (self.hint,)
        if self.box.children != children:
            self.box.children = children
        display = None if children else "none"
        if self.box.layout.display != display:
            self.box.layout.display = display
