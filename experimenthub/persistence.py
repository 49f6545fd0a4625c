"""Saving an experiment to its MLflow run and loading one back from a run.

``save`` brings the experiment's current run up to date (predictions since training, the figures
they changed, the last retrain-policy value); ``load`` rebuilds a new, ``ready`` experiment from a
finished run of the MLflow experiment of that name (the latest one by default), in this process or
a fresh one. What a run holds is described in :mod:`experimenthub.records`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from . import figures, records
from .experiment import Experiment

if TYPE_CHECKING:
    from .events import Event
    from .plugins.protocols import TrackingPlugin
    from .registry import ExperimentTypeRegistry


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
    restored = records.restore(tracking, registry, name, run_id, trust_pickles=trust_pickles)
    experiment = Experiment(name, restored.impl.type_name, restored.impl)
    events = experiment.restore(
        restored.impl, run_id=restored.run.run_id, exp_id=restored.run.experiment_id,
        started=_timestamp(restored.run.start_time), train_data=restored.train_data,
        evaluation=restored.evaluation, figures=restored.figures, eda=restored.eda,
        figure_names=restored.figure_names, eda_names=restored.eda_names, predictions=restored.predictions,
        runs=len(tracking.runs(name)))
    return experiment, events


def _timestamp(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)
