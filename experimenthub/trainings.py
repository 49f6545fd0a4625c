"""Starting trainings: one experiment, many at once, a new run of one, a retrain; and stopping them.

Everything is validated before a job is queued (the config by the experiment type, the data and
its size, the name, the room left in the catalogue), so a bad request fails now and changes
nothing. A train or retrain records its lineage on the new run: the run it replaced, what
triggered it and how many rows it added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import comparing, training_data
from .errors import ExperimentHubError, ExperimentNotFound, GroupsRejected, NoData
from .experiment import Experiment

if TYPE_CHECKING:
    import pandas as pd

    from .catalogue import Catalogue
    from .events import Event
    from .plugins.protocols import DatastreamPlugin
    from .registry import ExperimentTypeRegistry
    from .runner import TrainingRunner


class Trainings:
    def __init__(self, catalogue: Catalogue, types: ExperimentTypeRegistry, datastream: DatastreamPlugin,
                 runner: TrainingRunner, publish: Callable[[list[Event]], None], max_rows: int) -> None:
        self._catalogue = catalogue
        self._types = types
        self._datastream = datastream
        self._runner = runner
        self._publish = publish
        self._max_rows = max_rows

    def create(self, name: str, experiment_type: str, config: Mapping[str, Any] | None, data: Any) -> Experiment:
        self._catalogue.check_name(name)
        cls = self._types.get(experiment_type)
        type_instance, inline = training_data.build(cls, config)
        self._catalogue.check_room([name])
        frame, batch = training_data.resolve(self._datastream, name, type_instance, data, inline, None,
                                             self._max_rows)
        experiment = Experiment(name, experiment_type, type_instance)
        try:
            self._publish(self._catalogue.register([experiment]))
        except Exception:
            if batch:
                batch.nack()
            raise
        self._runner.start(experiment, type_instance, frame, batch, "train")
        return experiment

    def create_many(self, experiment_type: str, config: Mapping[str, Any] | None, data: Any, by: str | None,
                    prefix: str) -> list[Experiment]:
        from . import groups

        cls = self._types.get(experiment_type)
        parts = groups.split(data, by, prefix)
        if not parts:
            raise NoData("no groups: the data has no rows")
        prepared: list[tuple[Experiment, pd.DataFrame]] = []
        problems: dict[str, str] = {}
        for name, part in parts.items():
            try:
                self._catalogue.check_name(name)
                if name in self._catalogue:
                    raise GroupsRejected({name: "an experiment of that name exists"})
                type_instance, _ = training_data.build(cls, config)
                frame = type_instance.validate_data(training_data.check_rows(part, self._max_rows, f"group {name!r}"))
            except GroupsRejected as exc:
                problems.update(exc.groups)
                continue
            except ExperimentHubError as exc:
                problems[name] = str(exc)
                continue
            prepared.append((Experiment(name, experiment_type, type_instance), frame))
        if problems:
            raise GroupsRejected(problems)
        self._publish(self._catalogue.register([experiment for experiment, _ in prepared]))
        started = []
        for experiment, frame in prepared:
            try:
                self._runner.start(experiment, experiment.type_instance, frame, None, "train")
            except ExperimentNotFound:  # deleted meanwhile: the others still start
                continue
            started.append(experiment)
        return started

    def train(self, name: str, config: Mapping[str, Any] | None, data: Any) -> Experiment:
        experiment = self._catalogue.get(name)
        current, fallback = experiment.training_fallback()
        if config is None:
            type_instance, inline = type(current)(current.config), None
        else:
            type_instance, inline = training_data.build(type(current), config)
        frame, batch = training_data.resolve(self._datastream, name, type_instance, data, inline, fallback,
                                             self._max_rows)
        replaces = {comparing.TAG_REPLACES: experiment.model_run_id} if experiment.model_run_id else {}
        self._runner.start(experiment, type_instance, frame, batch, "train", replaces)
        return experiment

    def retrain(self, name: str, trigger: str) -> Experiment:
        import pandas as pd

        experiment = self._catalogue.get(name)
        current, train, new_rows = experiment.retraining_data()
        parts = [train]
        if new_rows is not None and len(new_rows):
            # the columns the model was trained on; extra columns of new rows are not features
            parts.append(new_rows[[c for c in train.columns if c in new_rows.columns]])
        type_instance = type(current)(current.config)
        frame = type_instance.validate_data(pd.concat(parts, ignore_index=True) if len(parts) > 1 else train)
        lineage = {comparing.TAG_TRIGGER: trigger, comparing.TAG_ROWS_ADDED: str(len(frame) - len(train))}
        if experiment.model_run_id:
            lineage[comparing.TAG_REPLACES] = experiment.model_run_id
        self._runner.start(experiment, type_instance, frame, None, "retrain", lineage)
        return experiment

    def stop(self, experiment: Experiment) -> bool:
        events = experiment.stop()
        if events is None:
            return False
        self._publish(events)
        return True
