"""The allowlist of experiment types.

Types come from three places only: the built-ins, classes registered in Python, and the
``experimenthub.experiment_types`` entry-point group of installed packages. A name from a request
is looked up here; nothing a client sends is ever imported as a module path.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from .errors import UnknownExperimentType
from .experiments.base import ExperimentType

ENTRY_POINT_GROUP = "experimenthub.experiment_types"
BUILTIN_TYPES = {
    "time_series": ("experimenthub.experiments.time_series", "TimeSeriesExperiment"),
    "fault_detection": ("experimenthub.experiments.fault_detection", "FaultDetectionExperiment"),
}


class ExperimentTypeRegistry:
    def __init__(self, enabled: tuple[str, ...] | None = None) -> None:
        self._lock = threading.Lock()
        self._enabled = enabled
        self._refs: dict[str, tuple[str, str]] = dict(BUILTIN_TYPES)
        self._classes: dict[str, type[ExperimentType]] = {}
        self._entry_points: dict[str, Any] | None = None

    def _load_entry_points(self) -> dict[str, Any]:
        if self._entry_points is None:
            from importlib.metadata import entry_points

            found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
            self._entry_points = found
            for name, ep in found.items():
                module, _, attr = ep.value.partition(":")
                self._refs.setdefault(name, (module, attr))
        return self._entry_points

    def register(self, name: str, cls: type[ExperimentType]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, ExperimentType)):
            raise TypeError(f"{cls!r} is not a subclass of experimenthub.ExperimentType")
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"experiment type names are letters, digits and underscores; got {name!r}")
        with self._lock:
            self._classes[name] = cls
            self._refs[name] = (cls.__module__, cls.__qualname__)

    def builtin_names(self) -> list[str]:
        """The types that ship with ExperimentHub (enabled or not)."""
        return list(BUILTIN_TYPES)

    def names(self) -> list[str]:
        with self._lock:
            self._load_entry_points()
            names = list(self._refs)
        return [n for n in names if self._enabled is None or n in self._enabled]

    def describe(self) -> dict[str, dict[str, str]]:
        """The seed's ``/available_experiments`` shape: type name -> module and class."""
        with self._lock:
            self._load_entry_points()
            refs = dict(self._refs)
        return {n: {"module": m, "class": c} for n, (m, c) in refs.items() if n in self.names()}

    def get(self, name: str) -> type[ExperimentType]:
        if not isinstance(name, str) or name not in self.names():
            raise UnknownExperimentType(str(name), self.names())
        with self._lock:
            if name in self._classes:
                return self._classes[name]
            if name in BUILTIN_TYPES:
                module, attr = BUILTIN_TYPES[name]
                cls = getattr(importlib.import_module(module), attr)
            else:
                cls = self._load_entry_points()[name].load()
            if not (isinstance(cls, type) and issubclass(cls, ExperimentType)):
                raise UnknownExperimentType(f"{name} (its entry point is not an ExperimentType)", self._refs)
            self._classes[name] = cls
            return cls
