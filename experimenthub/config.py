"""Reading experiment configs, with errors that name the key and the choices.

The shape is the seed's::

    {"setup": {"target": "value", "ds": "ds"},
     "create_model": {"model_type": "Prophet", "params": {...}},
     # optional:
     "forecast": {...}, "anomaly": {...}, "retrain": {...}, "evaluate": {...}, "data": [records]}

Experiment types add their own keys on top of :func:`parse_common`; this module knows only the
shared part.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidConfig

COMMON_SECTIONS = ("setup", "create_model", "forecast", "anomaly", "retrain", "evaluate", "data")


def as_mapping(value: Any, key: str | None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        where = f"'{key}'" if key else "the config"
        raise InvalidConfig(f"{where} must be a JSON object (mapping), got {type(value).__name__}", key)
    return dict(value)


def check_keys(mapping: Mapping[str, Any], allowed: Iterable[str], key: str | None) -> None:
    allowed = tuple(allowed)
    for name in mapping:
        if name not in allowed:
            path = f"{key}.{name}" if key else str(name)
            raise InvalidConfig(f"unknown key; allowed keys here: {', '.join(allowed)}", path)


def _given(mapping: Mapping[str, Any], name: str, default: Any) -> Any:
    """The value of ``name``; an explicit JSON null means "not given": the default applies."""
    value = mapping.get(name)
    return default if value is None else value


def optional_str(mapping: Mapping[str, Any], name: str, key: str, default: str | None = None) -> str | None:
    value = _given(mapping, name, default)
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidConfig(f"must be a non-empty string, got {value!r}", f"{key}.{name}")
    return value


def number(
    mapping: Mapping[str, Any], name: str, key: str, default: float | None,
    low: float | None = None, high: float | None = None, integer: bool = False,
) -> Any:
    value = _given(mapping, name, default)
    if value is None:
        return None
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (isinstance(value, float) and not math.isfinite(value)):
        kind = "an integer" if integer else "a number"
        raise InvalidConfig(f"must be {kind}, got {value!r}", f"{key}.{name}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidConfig(f"must be between {low} and {high}, got {value!r}", f"{key}.{name}")
    return value


def choice(mapping: Mapping[str, Any], name: str, key: str, choices: Iterable[str], default: str | None) -> Any:
    choices = tuple(choices)
    value = _given(mapping, name, default)
    if value not in choices:
        raise InvalidConfig(f"must be one of {', '.join(map(repr, choices))}; got {value!r}", f"{key}.{name}")
    return value


def parse_common(config: Any, model_types: Iterable[str], extra_sections: Iterable[str] = ()) -> dict[str, Any]:
    """Check the shared shape and return a deep copy with every section present as a dict."""
    config = as_mapping(config, None)
    check_keys(config, (*COMMON_SECTIONS, *extra_sections), None)
    try:
        config = copy.deepcopy(config)
        json.dumps({k: v for k, v in config.items() if k != "data"})
    except (TypeError, ValueError) as exc:
        raise InvalidConfig(f"must be JSON-serialisable: {exc}") from exc
    for section in ("setup", "forecast", "anomaly", "retrain"):
        config[section] = as_mapping(config.get(section) or {}, section)
    model_types = tuple(model_types)
    create = as_mapping(config.get("create_model") or {"model_type": model_types[0]}, "create_model")
    check_keys(create, ("model_type", "params"), "create_model")
    create.setdefault("model_type", model_types[0])
    if create["model_type"] not in model_types:
        raise InvalidConfig(
            f"unknown model_type {create['model_type']!r}; choices: {', '.join(model_types)}",
            "create_model.model_type",
        )
    create["params"] = as_mapping(create.get("params") or {}, "create_model.params")
    config["create_model"] = create
    return config


def optional_section(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    """An optional section (``evaluate``): its mapping, or None (and the key removed) when it is
    absent, null or empty, which means "off"."""
    section = config.pop(name, None)
    if not section:
        if section is not None and not isinstance(section, Mapping):
            raise InvalidConfig(f"'{name}' must be a JSON object (mapping), got {type(section).__name__}", name)
        return None
    return as_mapping(section, name)


def parse_retrain(section: Mapping[str, Any], metrics: Iterable[str], default_metric: str) -> dict[str, Any] | None:
    """The retrain policy, or None when the section is absent/empty or disabled."""
    if not section or section.get("enabled") is False:
        return None
    check_keys(section, ("enabled", "metric", "threshold", "window", "min_rows"), "retrain")
    metric = choice(section, "metric", "retrain", tuple(metrics), default_metric)
    threshold = number(section, "threshold", "retrain", None, low=0)
    if threshold is None:
        raise InvalidConfig("a retrain policy needs a threshold (retrain when the metric exceeds it)",
                            "retrain.threshold")
    return {
        "enabled": True,
        "metric": metric,
        "threshold": float(threshold),
        "window": number(section, "window", "retrain", 100, low=1, integer=True),
        "min_rows": number(section, "min_rows", "retrain", 10, low=1, integer=True),
    }
