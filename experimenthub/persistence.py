"""Saving an experiment to its MLflow run and loading one back from a run.

``save`` brings the experiment's current run up to date (predictions since training, the figures
they changed, the last retrain-policy value); ``load`` rebuilds a new, ``ready`` experiment from a
finished run of the MLflow experiment of that name (the latest model run by default), in this
process or a fresh one; ``stored`` lists one from its run without loading anything (``restore``:
the model is loaded on first use). What a run holds is described in :mod:`experimenthub.records`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import figures, records, recovery
from .errors import Busy, ExperimentHubError, RunNotFound
from .events import Event
from .experiment import Experiment

if TYPE_CHECKING:
    from .catalogue import Catalogue
    from .plugins.protocols import RunInfo, TrackingPlugin
    from .registry import ExperimentTypeRegistry
    from .runner import TrainingRunner

log = logging.getLogger(__name__)


class Persistence:
    """The hub's save / load / restore, between its catalogue and the tracking store."""

    def __init__(self, tracking: TrackingPlugin, types: ExperimentTypeRegistry, catalogue: Catalogue,
                 runner: TrainingRunner, publish: Callable[[list[Event]], None], trust_pickles: bool = False) -> None:
        self._trust_pickles = trust_pickles
        self._tracking = tracking
        self._types = types
        self._catalogue = catalogue
        self._runner = runner
        self._publish = publish

    def save(self, name: str) -> str:
        experiment = self._catalogue.get(name)
        experiment.trained()
        self._runner.settle(experiment)  # the write-behind logging of the run completes first
        run_id = save(self._tracking, experiment)
        self._publish([Event("tracking", name, {"run_id": run_id, "tracking": "saved"})])
        return run_id

    def load(self, name: str, run_id: str | None) -> Experiment:
        self._catalogue.check_name(name)
        existing = self._catalogue.find(name)
        if existing is not None:
            if existing.busy:
                raise Busy(f"Experiment {name!r} is {existing.state}; stop it before loading a run into it")
            if run_id is None:
                self._runner.settle(existing)  # the newest run may still be written: "latest" must include it
        experiment, events = load(self._tracking, self._types, name, run_id, trust_pickles=self._trust_pickles)
        _, created = self._catalogue.replace(experiment)
        self._publish(created + events)
        return experiment

    def restore(self, names: str | Iterable[str] | None) -> list[str]:
        wanted = None if names is None else {names} if isinstance(names, str) else set(names)
        found = recovery.stored_models(self._tracking)
        missing = (wanted or set()) - set(found)
        if missing:
            raise RunNotFound(f"No finished model run to restore for {sorted(missing)} at {self._tracking.uri}")
        experiments = []
        for name, run in found.items():
            if (wanted is not None and name not in wanted) or name in self._catalogue:
                continue
            try:
                self._catalogue.check_name(name)
                experiments.append(stored(self._tracking, self._types, run, trust_pickles=self._trust_pickles))
            except ExperimentHubError as exc:  # a name or type this hub cannot take
                log.warning("not restoring %r: %s", name, exc)
        self._publish(self._catalogue.register(experiments))
        return [e.name for e in experiments]


def save(tracking: TrackingPlugin, experiment: Experiment) -> str:
    """Write predictions and the figures they changed to the experiment's run; returns the run id.
    The caller waits for the run's write-behind logging first."""
    experiment.trained()  # Busy / NotReady before anything is written
    figures.refresh(experiment, unbuilt=False)  # figures never asked for stay deferred
    run_id, figure_json, predictions, check = experiment.save_inputs()
    records.update(tracking, run_id, figure_json, predictions, check)
    return run_id


def load(tracking: TrackingPlugin, registry: ExperimentTypeRegistry, name: str,
         run_id: str | None, *, trust_pickles: bool = False) -> tuple[Experiment, list[Event]]:
    """A new experiment ``name`` restored from a run, with the events announcing it. The run's model
    is refused (:class:`~experimenthub.errors.UnsafeModel`) in any format that can run code when
    loaded, pickles included unless ``trust_pickles`` (the setting of that name)."""
    fields = _restored(tracking, registry, name, run_id, trust_pickles)
    experiment = Experiment(name, fields["type_instance"].type_name, fields["type_instance"])
    events = experiment.restore(**fields)
    return experiment, events


def stored(tracking: TrackingPlugin, registry: ExperimentTypeRegistry, run: RunInfo, *,
           trust_pickles: bool = False) -> Experiment:
    """An experiment known from its model run, its model and data loaded on first use (with the
    same refusal of unsafe model formats as :func:`load`)."""
    name = run.experiment_name
    cls = registry.get(run.tags[records.TAG_TYPE])
    return Experiment.from_store(
        name, run.tags[records.TAG_TYPE], run.tags.get(records.TAG_MODEL, ""), run_id=run.run_id,
        exp_id=run.experiment_id, started=_timestamp(run.start_time),
        metrics={k: float(v) for k, v in run.metrics.items() if not k.startswith("monitor_")},
        figure_names=list(cls.figure_names or ()), eda_names=list(cls.eda_figure_names or ()),
        loader=lambda: _restored(tracking, registry, name, run.run_id, trust_pickles))


def _restored(tracking: TrackingPlugin, registry: ExperimentTypeRegistry, name: str,
              run_id: str | None, trust_pickles: bool) -> dict[str, Any]:
    restored = records.restore(tracking, registry, name, run_id, trust_pickles=trust_pickles)
    return {"type_instance": restored.impl, "run_id": restored.run.run_id, "exp_id": restored.run.experiment_id,
            "started": _timestamp(restored.run.start_time), "train_data": restored.train_data,
            "evaluation": restored.evaluation, "figures": restored.figures, "eda": restored.eda,
            "figure_names": restored.figure_names, "eda_names": restored.eda_names,
            "predictions": restored.predictions, "runs": len(tracking.runs(name))}


def _timestamp(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)
