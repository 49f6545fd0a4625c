"""The hub's experiments by name: who is in, under which names, and how many.

The catalogue owns the registry (name -> :class:`~experimenthub.experiment.Experiment`) and its
lock; nothing else adds or removes entries. It applies the name rules (with the names the faces
reserve) and the ``max_experiments`` limit, registers many experiments at once or none, and
returns the events to publish.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from .errors import Busy, ExperimentExists, ExperimentNotFound, LimitExceeded
from .events import Event
from .experiment import Experiment
from .naming import check_name


class Catalogue:
    def __init__(self, max_experiments: int, reserved_names: Collection[str] = ()) -> None:
        self._lock = threading.RLock()
        self._experiments: dict[str, Experiment] = {}
        self._max = max_experiments
        self._reserved = frozenset(reserved_names)

    def check_name(self, name: Any, what: str = "experiment name") -> str:
        """``name`` if it may name an experiment or queue here; InvalidName saying why not."""
        return check_name(name, what, self._reserved)

    def __len__(self) -> int:
        return len(self._experiments)

    def __contains__(self, name: object) -> bool:
        return name in self._experiments

    def get(self, name: str) -> Experiment:
        with self._lock:
            experiment = self._experiments.get(name) if isinstance(name, str) else None
            if experiment is None:
                raise ExperimentNotFound(str(name), self._experiments)
            return experiment

    def find(self, name: str) -> Experiment | None:
        with self._lock:
            return self._experiments.get(name)

    def get_all(self, names: Iterable[str]) -> list[Experiment]:
        """The experiments of ``names``; ExperimentNotFound naming every unknown one."""
        with self._lock:
            wanted = list(names)
            unknown = [n for n in wanted if not isinstance(n, str) or n not in self._experiments]
            if unknown:
                raise ExperimentNotFound(", ".join(map(str, unknown)), self._experiments)
            return [self._experiments[n] for n in wanted]

    def snapshot(self) -> Mapping[str, Experiment]:
        with self._lock:
            return types.MappingProxyType(dict(self._experiments))

    def states(self) -> dict[str, str]:
        with self._lock:
            return {name: experiment.state for name, experiment in self._experiments.items()}

    def check_room(self, names: list[str]) -> None:
        """ExperimentExists for a taken name, LimitExceeded when the new ones would pass the limit."""
        with self._lock:
            for name in names:
                if name in self._experiments:
                    raise ExperimentExists(name)
            if len(self._experiments) + len(names) > self._max:
                raise LimitExceeded(
                    f"this hub holds {len(self._experiments)} experiments; {len(names)} more would pass the limit "
                    f"of {self._max} (setting max_experiments, EXPERIMENTHUB_MAX_EXPERIMENTS); delete some first")

    def register(self, experiments: list[Experiment]) -> list[Event]:
        """Add new experiments all at once, or none (ExperimentExists / LimitExceeded)."""
        with self._lock:
            self.check_room([e.name for e in experiments])
            for experiment in experiments:
                self._experiments[experiment.name] = experiment
        return [Event("experiment_created", e.name, {"experiment_type": e.type_name}) for e in experiments]

    def replace(self, experiment: Experiment) -> tuple[Experiment | None, list[Event]]:
        """Put a loaded experiment in place of the one of its name (Busy while that one trains)."""
        with self._lock:
            current = self._experiments.get(experiment.name)
            if current is not None and current.busy:
                raise Busy(f"Experiment {experiment.name!r} started training meanwhile; load refused")
            if current is None:
                self.check_room([experiment.name])
            self._experiments[experiment.name] = experiment
        if current is not None:
            current.retire()
            return current, []
        return None, [Event("experiment_created", experiment.name, {"experiment_type": experiment.type_name})]

    def remove(self, name: str) -> Experiment:
        """Take an experiment out (its job stops, see ``Experiment.retire``)."""
        with self._lock:
            experiment = self._experiments.pop(name, None) if isinstance(name, str) else None
            if experiment is None:
                raise ExperimentNotFound(str(name), self._experiments)
        experiment.retire()
        return experiment
