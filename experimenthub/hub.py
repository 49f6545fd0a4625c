"""The hub: one object in the kernel that every face (cells, widgets, REST) calls.

The hub owns the registry of experiments (name -> :class:`~experimenthub.experiment.Experiment`)
and the event bus, and hands the work to the modules that own it: training jobs to the runner
(:mod:`.runner`, through the admission queue and the executor), predictions and the retrain policy
to :mod:`.predicting`, figures to :mod:`.figures`, saving and loading to :mod:`.persistence`,
streaming to :mod:`.streaming`. Each experiment changes its own state through named transitions
that return the events the hub publishes.

Thread-safety: the registry is guarded by the hub lock, each experiment by its own lock; neither is
held during I/O (MLflow, the datastream, fitting). Events are published after the locks are released.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import threading
import time
import types
import weakref
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload

from . import figures, persistence, records, training_data
from .admission import JobQueue
from .errors import ExperimentExists, ExperimentHubError, ExperimentNotFound, GroupsRejected, LimitExceeded, NoData
from .events import Event, EventBus, Subscription
from .executor import make_executor, queue_capacity
from .experiment import Experiment
from .naming import check_name
from .predicting import Predictor
from .registry import ExperimentTypeRegistry
from .runner import TrainingRunner
from .settings import Settings
from .tables import to_frame, to_records
from .tracking_writer import BoundedTracking

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from .executor import Executor
    from .experiments.base import ExperimentType
    from .plugins.protocols import Batch, DatastreamPlugin, RunInfo, TrackingPlugin
    from .status import Status
    from .streaming import Streaming

log = logging.getLogger(__name__)

_HEALTH_MAX_AGE = 1.0  # seconds a health check is reused (outages still show within 2 s)


class Hub:
    """Create, train, predict with, save and load experiments; observe them through events.

    This is the core; users take :class:`experimenthub.ExperimentHub`, which adds the faces
    (``serve()`` for the REST API, ``panel()`` for the widgets) on top without the core importing them.

    >>> hub = ExperimentHub()                                  # doctest: +SKIP
    >>> hub.create_experiment("sales", "time_series", config, data=df)  # doctest: +SKIP
    >>> hub.wait("sales").state                                 # doctest: +SKIP
    'ready'
    """

    def __init__(self, settings: Settings | None = None, *, tracking: TrackingPlugin | None = None,
                 datastream: DatastreamPlugin | None = None, warm_up: bool = True,
                 reserved_names: Collection[str] = (), dask_client: Any = None, **overrides: Any) -> None:
        """``overrides``: any setting (``home``, ``mlflow_uri``, ``rabbitmq_url``, ``max_trainings``,
        ``experiment_types``, ... and ``config_file``), winning over the environment and the YAML
        file; or pass a whole ``settings`` object. ``dask_client``: a ``distributed.Client`` whose
        cluster runs the trainings (the hub leaves it open on close)."""
        from .plugins.defaults import default_datastream, default_tracking

        if settings is None:
            if overrides.get("experiment_types") is not None:
                overrides["experiment_types"] = tuple(overrides["experiment_types"])
            settings = Settings.from_env(**overrides)
        elif overrides:
            raise TypeError(f"give either settings or setting overrides ({sorted(overrides)}), not both")
        self.settings = settings
        self._reserved = frozenset(reserved_names)
        self._lock = threading.RLock()
        self._experiments: dict[str, Experiment] = {}
        self._events = EventBus()
        self._types = ExperimentTypeRegistry(settings.experiment_types)
        self._store = tracking or default_tracking(settings)
        self._tracking = BoundedTracking(self._store, settings.tracking_writers)  # every write goes through it
        self._datastream = datastream or default_datastream(settings)
        self._executor: Executor = make_executor(settings, dask_client)
        self._queue = JobQueue(queue_capacity(settings, self._executor))
        self._runner = TrainingRunner(self._tracking, self._executor, self._queue, self._publish,
                                      settings.defer_figures)
        self._predictor = Predictor(self._datastream, self._publish, self.retrain)
        self._streams: Streaming | None = None  # watchers, made on the first watch()
        self._health_lock = threading.Lock()
        self._health_cache: tuple[float, dict[str, Any] | None] = (0.0, None)
        if warm_up:
            threading.Thread(target=self._warm_up, name="experimenthub-warm-up", daemon=True).start()
        _open_hubs.add(self)

    def _warm_up(self) -> None:
        """Pay the slow first steps off the caller's thread: the executor (the worker server with
        its preloaded libraries), the experiment types, and the MLflow client (which creates the
        sqlite schema)."""
        def warm_types() -> None:
            for name in self._types.names():
                self._types.get(name).warm_up()

        for step in (self._executor.warm_up, warm_types, self._tracking.health, self.freeze_gc):
            try:
                step()
            except Exception:  # warming is an optimisation; the real call reports errors
                log.debug("warm-up step failed", exc_info=True)

    def freeze_gc(self) -> None:
        """gc.freeze() the objects alive now (the imported libraries, mostly), unless the settings say
        not to: later full collections skip them, so they no longer pause every thread."""
        if self.settings.freeze_gc:
            import gc

            gc.collect()
            gc.freeze()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {len(self._experiments)} experiments, tracking={self._tracking.uri}, "
                f"home={self.settings.home}>")

    # -- registry and events -----------------------------------------------------------------
    @property
    def available_experiments(self) -> dict[str, dict[str, str]]:
        """Experiment types: name -> ``{"module": ..., "class": ...}`` (the seed's shape)."""
        return self._types.describe()

    def register_experiment_type(self, name: str, cls: type[ExperimentType]) -> None:
        self._types.register(name, cls)

    def experiment_type(self, name: str) -> type[ExperimentType]:
        """The class registered as experiment type ``name`` (its ``model_types``, ``setup_keys``,
        ``model_parameters(model_type)``); UnknownExperimentType otherwise."""
        return self._types.get(name)

    @property
    def experiments(self) -> Mapping[str, Experiment]:
        """A read-only snapshot: name -> :class:`Experiment`."""
        with self._lock:
            return types.MappingProxyType(dict(self._experiments))

    @property
    def tracking(self) -> TrackingPlugin:
        """The tracking store (MLflow) the hub records runs in."""
        return self._store

    @property
    def datastream(self) -> DatastreamPlugin:
        return self._datastream

    def subscribe(self, callback: Any, kinds: Iterable[str] | None = None) -> Subscription:
        """Call ``callback(event)`` on every hub event (or those of ``kinds``)."""
        return self._events.subscribe(callback, kinds)

    def check_name(self, name: Any, what: str = "experiment name") -> str:
        """``name`` if it may name an experiment or queue here; InvalidName saying why not."""
        return check_name(name, what, self._reserved)

    def _publish(self, events: Iterable[Event]) -> None:
        for event in events:
            self._events.publish(event)

    def _get(self, name: str) -> Experiment:
        with self._lock:
            experiment = self._experiments.get(name) if isinstance(name, str) else None
            if experiment is None:
                raise ExperimentNotFound(str(name), self._experiments)
            return experiment

    # -- creating and training ---------------------------------------------------------------
    def create_experiment(self, name: str, experiment_type: str, config: Mapping[str, Any] | None = None,
                          data: Any = None) -> Experiment:
        """Validate, register and start training in the background; returns at once.

        Training data: ``data`` (a DataFrame or records), else ``config["data"]`` (inline records),
        else the datastream queue named after the experiment.
        """
        self.check_name(name)
        cls = self._types.get(experiment_type)
        type_instance, inline = training_data.build(cls, config)
        self._check_room([name])
        frame, batch = self._training_data(name, type_instance, data, inline, fallback=None)
        experiment = Experiment(name, experiment_type, type_instance)
        try:
            self._register([experiment])
        except Exception:
            if batch:
                batch.nack()
            raise
        self._runner.start(experiment, type_instance, frame, batch, "train")
        return experiment

    def create_experiments(self, experiment_type: str, config: Mapping[str, Any] | None, data: Any,
                           by: str | None = None, prefix: str = "") -> list[Experiment]:
        """One experiment per group: per distinct value of column ``by`` in a long table (the column
        is dropped), or per entry of a mapping name -> table. Names come from the values, made valid
        (``"Store 1"`` -> ``"Store_1"``) after ``prefix``. Every group is validated before any starts:
        GroupsRejected names every bad group and nothing is created. Returns the experiments, which
        train through the queue (``wait(names)`` waits for all)."""
        from . import groups

        cls = self._types.get(experiment_type)
        parts = groups.split(data, by, prefix)
        if not parts:
            raise NoData("no groups: the data has no rows")
        prepared: list[tuple[Experiment, pd.DataFrame]] = []
        problems: dict[str, str] = {}
        for name, part in parts.items():
            try:
                self.check_name(name)
                type_instance, _ = training_data.build(cls, config)
                frame = type_instance.validate_data(training_data.check_rows(part, self.settings.max_rows,
                                                                             f"group {name!r}"))
            except ExperimentHubError as exc:
                problems[name] = str(exc)
                continue
            prepared.append((Experiment(name, experiment_type, type_instance), frame))
        with self._lock:
            problems.update({n: "an experiment of that name exists" for n in parts if n in self._experiments})
        if problems:
            raise GroupsRejected(problems)
        self._check_room(list(parts))
        self._register([experiment for experiment, _ in prepared])
        for experiment, frame in prepared:
            self._runner.start(experiment, experiment.type_instance, frame, None, "train")
        return [experiment for experiment, _ in prepared]

    def train(self, name: str, config: Mapping[str, Any] | None = None, data: Any = None) -> Experiment:
        """Train again (a new run), with a new config and/or data; defaults to what it has."""
        experiment = self._get(name)
        current, fallback = experiment.training_fallback()
        if config is None:
            type_instance, inline = type(current)(current.config), None
        else:
            type_instance, inline = training_data.build(type(current), config)
        frame, batch = self._training_data(name, type_instance, data, inline, fallback=fallback)
        self._runner.start(experiment, type_instance, frame, batch, "train")
        return experiment

    def retrain(self, name: str) -> Experiment:
        """A new run with the same config on the training data plus new observations since."""
        import pandas as pd

        experiment = self._get(name)
        current, train, new_rows = experiment.retraining_data()
        parts = [train]
        if new_rows is not None and len(new_rows):
            # the columns the model was trained on; extra columns of new rows are not features
            parts.append(new_rows[[c for c in train.columns if c in new_rows.columns]])
        type_instance = type(current)(current.config)
        frame = type_instance.validate_data(pd.concat(parts, ignore_index=True) if len(parts) > 1 else train)
        self._runner.start(experiment, type_instance, frame, None, "retrain")
        return experiment

    def _training_data(self, name: str, type_instance: ExperimentType, data: Any, inline: Any,
                       fallback: pd.DataFrame | None) -> tuple[pd.DataFrame, Batch | None]:
        return training_data.resolve(self._datastream, name, type_instance, data, inline, fallback,
                                     self.settings.max_rows)

    def _check_room(self, names: list[str]) -> None:
        with self._lock:
            new = [n for n in names if n not in self._experiments]
            if len(self._experiments) + len(new) > self.settings.max_experiments:
                raise LimitExceeded(
                    f"this hub holds {len(self._experiments)} experiments; {len(new)} more would pass the limit of "
                    f"{self.settings.max_experiments} (setting max_experiments, EXPERIMENTHUB_MAX_EXPERIMENTS); "
                    f"delete some first")
            for name in names:
                if name in self._experiments:
                    raise ExperimentExists(name)

    def _register(self, experiments: list[Experiment]) -> None:
        """Add new experiments to the registry at once (ExperimentExists if a name was taken meanwhile)."""
        with self._lock:
            for experiment in experiments:
                if experiment.name in self._experiments:
                    raise ExperimentExists(experiment.name)
            for experiment in experiments:
                self._experiments[experiment.name] = experiment
        self._publish([Event("experiment_created", e.name, {"experiment_type": e.type_name}) for e in experiments])

    # -- observing and waiting ---------------------------------------------------------------
    def status(self, name: str) -> Status:
        import dataclasses

        status = self._get(name).status
        streams = self._streams
        return dataclasses.replace(status, watching=True) if streams and streams.watching(name) else status

    @overload
    def wait(self, name: str, timeout: float | None = None, *, tracked: bool = False,  # type: ignore[overload-overlap]
             raise_on_failure: bool = True, progress: bool | None = None) -> Status: ...

    @overload
    def wait(self, name: Iterable[str], timeout: float | None = None, *, tracked: bool = False,
             raise_on_failure: bool = True, progress: bool | None = None) -> dict[str, Status]: ...

    def wait(self, name: str | Iterable[str], timeout: float | None = None, *, tracked: bool = False,
             raise_on_failure: bool = True, progress: bool | None = None) -> Status | dict[str, Status]:
        """Block until the experiment leaves ``created``/``training`` (and, with ``tracked``, until
        its run is fully logged). Raises TimeoutError, or TrainingFailed when it failed.

        With a list of names: waits for all, showing progress (a bar in a notebook, lines in a
        script; ``progress=False`` hides it) and returns ``{name: status}``; a failed one does not
        raise, its status says why."""
        from .errors import TrainingFailed
        from .waiting import wait_many

        if not isinstance(name, str):
            experiments = {n: self._get(n) for n in name}
            return wait_many(experiments, self.subscribe, timeout, tracked, progress)
        status = self._get(name).wait(timeout, tracked=tracked)
        if raise_on_failure and status.state == "failed":
            raise TrainingFailed(f"Training of {name!r} failed: {status.error}")
        return status

    # -- stopping and deleting -----------------------------------------------------------------
    @overload
    def stop_training(self, name: str) -> bool: ...  # type: ignore[overload-overlap]

    @overload
    def stop_training(self, name: Iterable[str]) -> dict[str, bool]: ...

    def stop_training(self, name: str | Iterable[str]) -> bool | dict[str, bool]:
        """Stop a running (or queued: it never starts) training now; its worker is killed. True if
        one was running. With a list of names: ``{name: stopped}`` (unknown names refused first)."""
        if not isinstance(name, str):
            experiments = self._get_all(name)
            return {e.name: self._stop(e) for e in experiments}
        return self._stop(self._get(name))

    def _stop(self, experiment: Experiment) -> bool:
        events = experiment.stop()
        if events is None:
            return False
        self._publish(events)
        return True

    def delete(self, name: str | Iterable[str]) -> None:
        """Stop any training and streaming, and remove the experiment (or each of a list of names;
        unknown names are refused before any is deleted) from the hub. Its MLflow runs stay;
        messages still in its queue stay too."""
        names = [name] if isinstance(name, str) else [e.name for e in self._get_all(name)]
        for one in names:
            if self._streams is not None:
                self._streams.unwatch(one)
            with self._lock:
                experiment = self._experiments.pop(one, None) if isinstance(one, str) else None
                if experiment is None:
                    raise ExperimentNotFound(str(one), self._experiments)
            experiment.retire()
            self._publish([Event("experiment_deleted", one)])

    def _get_all(self, names: Iterable[str]) -> list[Experiment]:
        with self._lock:
            wanted = list(names)
            unknown = [n for n in wanted if not isinstance(n, str) or n not in self._experiments]
            if unknown:
                raise ExperimentNotFound(", ".join(map(str, unknown)), self._experiments)
            return [self._experiments[n] for n in wanted]

    # -- using a trained model ------------------------------------------------------------------
    def predict(self, name: str, data: Any = None) -> pd.DataFrame:
        """Predict on new rows; with none, on the next batch of the experiment's queue, and with an
        empty queue, the type's default (time_series: the configured horizon ahead)."""
        return self._predictor.predict(self._get(name), data)

    def predictions(self, name: str) -> pd.DataFrame | None:
        """Every prediction since the last training (None before the first)."""
        return self._get(name).predictions()

    # -- figures -----------------------------------------------------------------------------------
    def plot_names(self, name: str) -> tuple[list[str], list[str]]:
        """(model figure names, EDA figure names) available now."""
        experiment = self._get(name)
        return experiment.figure_names, experiment.eda_names

    def plot_json(self, name: str, plot_name: str) -> str:
        """A model figure as Plotly JSON (built on first request, updated with predictions made
        since training)."""
        return figures.model_figure(self._get(name), plot_name, self._log_built)

    def plot_eda_json(self, name: str, plot_name: str) -> str:
        return figures.eda_figure(self._get(name), plot_name, self._log_built)

    def _log_built(self, experiment: Experiment, folder: str, built: dict[str, str]) -> None:
        """Figures built on request join the experiment's run, written in the background."""
        run_id = experiment.run_id
        if run_id is not None:
            self._runner.write_later(experiment, f"add figures {sorted(built)} to run {run_id}",
                                     lambda: records.log_figures(self._tracking, run_id, folder, built))

    def plot(self, name: str, plot_name: str) -> go.Figure:
        import plotly.io

        return plotly.io.from_json(self.plot_json(name, plot_name))

    def plot_eda(self, name: str, plot_name: str) -> go.Figure:
        import plotly.io

        return plotly.io.from_json(self.plot_eda_json(name, plot_name))

    # -- data and metadata -------------------------------------------------------------------------
    def train_data(self, name: str) -> pd.DataFrame:
        """The data of the current model; while a first training runs, the data it trains on."""
        return self._get(name).train_data()

    def cfg(self, name: str) -> dict[str, Any]:
        return self._get(name).config

    def run_id(self, name: str) -> str:
        from .errors import NotReady

        run_id = self._get(name).run_id
        if run_id is None:
            raise NotReady(f"Experiment {name!r} has no MLflow run yet")
        return run_id

    def exp_id(self, name: str) -> str:
        from .errors import NotReady

        exp_id = self._get(name).exp_id
        if exp_id is None:
            raise NotReady(f"Experiment {name!r} has no MLflow experiment yet")
        return exp_id

    def runs(self, name: str) -> list[RunInfo]:
        """MLflow runs recorded for ``name``, newest first (works for experiments not in memory)."""
        self.check_name(name)
        return self._tracking.runs(name)

    # -- MLflow ------------------------------------------------------------------------------------
    def save(self, name: str) -> str:
        """Bring the experiment's MLflow run up to date (predictions, figures); returns the run id."""
        experiment = self._get(name)
        experiment.trained()
        self._runner.settle(experiment)  # the write-behind logging of the run completes first
        run_id = persistence.save(self._tracking, experiment)
        self._publish([Event("tracking", name, {"run_id": run_id, "tracking": "saved"})])
        return run_id

    def load(self, name: str, run_id: str | None = None) -> Experiment:
        """Rebuild ``name`` from an MLflow run (its latest finished run when ``run_id`` is None)."""
        from .errors import Busy

        self.check_name(name)
        with self._lock:
            existing = self._experiments.get(name)
        if existing is not None:
            if existing.busy:
                raise Busy(f"Experiment {name!r} is {existing.state}; stop it before loading a run into it")
            if run_id is None:
                self._runner.settle(existing)  # the newest run may still be written: "latest" must include it
        experiment, events = persistence.load(self._tracking, self._types, name, run_id)
        with self._lock:
            current = self._experiments.get(name)
            if current is not None and current.busy:
                raise Busy(f"Experiment {name!r} started training meanwhile; load refused")
            self._experiments[name] = experiment
        if current is not None:
            current.retire()
        else:
            self._publish([Event("experiment_created", name, {"experiment_type": experiment.type_name})])
        self._publish(events)
        return experiment

    # -- plugins -----------------------------------------------------------------------------------
    def health(self, max_age: float = _HEALTH_MAX_AGE) -> dict[str, Any]:
        """The seed's ``/health``: ``{"mlops": {...}, "datastream": {...}}``, and ``"executor"``.

        A check younger than ``max_age`` seconds is reused, and concurrent callers share one
        check: a dashboard polling health from many clients costs one probe per second, not one
        MLflow query per request."""
        with self._health_lock:
            checked_at, cached = self._health_cache
            if cached is not None and time.monotonic() - checked_at < max_age:
                return copy.deepcopy(cached)
            result = {"mlops": self._tracking.health(), "datastream": self._datastream.health(),
                      "executor": self._executor.health()}
            self._health_cache = (time.monotonic(), result)
            return copy.deepcopy(result)

    def publish(self, name: str, data: Any) -> int:
        """Send a table to the experiment's queue as one message; returns the number of rows."""
        self.check_name(name, "queue name")
        frame = to_frame(data, "data")
        if len(frame) == 0:
            raise NoData(f"Nothing to publish to queue {name!r}: the table has 0 rows")
        self._datastream.publish(name, json.dumps(to_records(frame)).encode())
        return len(frame)

    def flush(self, queue: str) -> int:
        """Empty a queue; returns how many messages were dropped."""
        self.check_name(queue, "queue name")
        return self._datastream.purge(queue)

    def close(self, timeout: float = 60.0) -> None:
        """Stop every training, let write-behind MLflow logging finish (up to ``timeout`` s), and
        close plugin connections."""
        if self._streams is not None:
            self._streams.close()
        with self._lock:
            experiments = list(self._experiments.values())
        for experiment in experiments:
            self._publish(experiment.stop() or [])
        self._runner.join(timeout)
        self._executor.close()
        self._datastream.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- datastream: streaming mode ----------------------------------------------------------------
    def watch(self, name: str, prefetch: int = 1) -> bool:
        """Streaming mode: predict every batch arriving on the experiment's queue, in order, through
        :meth:`predict`; each is acknowledged after its predict succeeded, malformed ones go to the
        dead-letter queue, batches meeting a busy experiment wait. False if already watching.
        ``prefetch`` > 1 speeds up the transport but may reorder around a requeue (see streaming)."""
        return self._streaming().watch(name, prefetch)

    def unwatch(self, name: str, timeout: float = 2.0) -> bool:
        """Stop streaming mode for ``name`` within ``timeout`` s. False if it was not watched."""
        return self._streaming().unwatch(name, timeout)

    def watching(self, name: str) -> bool:
        return self._streaming().watching(name)

    def watcher_status(self, name: str) -> dict[str, Any] | None:
        """Counts of the streaming watcher of ``name`` (``watching``, ``predicted``, ``rejected``,
        ``requeued``, ``last_error``); None when it was never watched."""
        return self._streaming().status(name)

    def _streaming(self) -> Streaming:
        from .streaming import Streaming

        with self._lock:
            if self._streams is None:
                self._streams = Streaming(self, self._publish)
            return self._streams


_open_hubs: weakref.WeakSet[Hub] = weakref.WeakSet()


@atexit.register
def _close_open_hubs() -> None:
    """At interpreter exit, finish the MLflow runs being written (daemon threads die mid-write)."""
    for hub in list(_open_hubs):
        try:
            hub.close(timeout=30)
        except Exception:
            log.warning("closing %r at exit failed", hub, exc_info=True)
