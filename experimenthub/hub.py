"""The hub: one object in the kernel that every face (cells, widgets, REST) calls.

Thread-safety: the registry of experiments is guarded by the hub lock, each experiment's state by
its own lock; neither is held during I/O (MLflow, the datastream, fitting). Events are published
after the locks are released.
"""

from __future__ import annotations

import atexit
import copy
import logging
import re
import threading
import types
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import queued, records
from .errors import (
    Busy,
    DataError,
    ExperimentExists,
    ExperimentHubError,
    ExperimentNotFound,
    InvalidConfig,
    InvalidName,
    NoData,
    NotReady,
    PlotNotFound,
    TrainingFailed,
)
from .events import Event, EventBus, Subscription
from .experiment import BUSY_STATES, Experiment, Status, now
from .registry import ExperimentTypeRegistry
from .runner import TrainingRunner
from .settings import Settings
from .tables import to_frame

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from .experiments.base import ExperimentType
    from .plugins.protocols import Batch, DatastreamPlugin, RunInfo, TrackingPlugin
    from .streaming import Streaming

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
#: first path segments of the REST API; an experiment with one of these names would be ambiguous
RESERVED_NAMES = frozenset({"health", "available_experiments", "create_experiment", "flush", "publish",
                            "experiments", "docs", "redoc", "openapi.json"})
_PREDICTION_HISTORY = 100_000  # rows of predictions kept per experiment (oldest dropped)
_HEALTH_MAX_AGE = 1.0  # seconds a health check is reused (outages still show within 2 s)


def check_name(name: Any, what: str = "experiment name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidName(
            f"Invalid {what} {name!r}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter "
            f"or digit")
    if name in RESERVED_NAMES:
        raise InvalidName(f"Invalid {what} {name!r}: it is a path of the REST API; choose another name")
    return name


class Hub:
    """Create, train, predict with, save and load experiments; observe them through events.

    This is the core; users take :class:`experimenthub.ExperimentHub`, which adds the faces
    (``serve()`` for the REST API, ``panel()`` for the widgets) on top without the core importing them.

    >>> hub = ExperimentHub()                                  # doctest: +SKIP
    >>> hub.create_experiment("sales", "time_series", config, data=df)  # doctest: +SKIP
    >>> hub.wait("sales").state                                 # doctest: +SKIP
    'ready'
    """

    def __init__(self, settings: Settings | None = None, *, home: str | None = None,
                 mlflow_uri: str | None = None, rabbitmq_url: str | None = None,
                 experiment_types: Iterable[str] | None = None, config_file: str | None = None,
                 tracking: TrackingPlugin | None = None, datastream: DatastreamPlugin | None = None,
                 warm_up: bool = True) -> None:
        if settings is None:
            settings = Settings.from_env(
                home=home, mlflow_uri=mlflow_uri, rabbitmq_url=rabbitmq_url, config_file=config_file,
                experiment_types=tuple(experiment_types) if experiment_types is not None else None)
        self.settings = settings
        self._lock = threading.RLock()
        self._experiments: dict[str, Experiment] = {}
        self._events = EventBus()
        self._types = ExperimentTypeRegistry(settings.experiment_types)
        self._tracking = tracking or _default_tracking(settings)
        self._datastream = datastream or _default_datastream(settings)
        self._runner = TrainingRunner(self)
        self._streams: Streaming | None = None  # watchers, made on the first watch()
        self._health_lock = threading.Lock()
        self._health_cache: tuple[float, dict[str, Any] | None] = (0.0, None)
        if warm_up:
            threading.Thread(target=self._warm_up, name="experimenthub-warm-up", daemon=True).start()
        _open_hubs.add(self)

    def _warm_up(self) -> None:
        """Pay the slow first steps off the caller's thread: the worker fork server with its
        preloaded libraries, and the MLflow client (which creates the sqlite schema)."""
        from . import jobs

        def import_types() -> None:
            for name in self._types.names():
                self._types.get(name)
            from .experiments.time_series import prophet_parameters

            prophet_parameters()  # validation of a Prophet config imports prophet

        for step in (jobs.warm_up, import_types, lambda: self._tracking.health(), self.freeze_gc):
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
        """The class registered as experiment type ``name`` (its ``model_types``,
        ``model_parameters(model_type)``); UnknownExperimentType otherwise."""
        return self._types.get(name)

    @property
    def experiments(self) -> Mapping[str, Experiment]:
        """A read-only snapshot: name -> :class:`Experiment`."""
        with self._lock:
            return types.MappingProxyType(dict(self._experiments))

    @property
    def tracking(self) -> TrackingPlugin:
        return self._tracking

    @property
    def datastream(self) -> DatastreamPlugin:
        return self._datastream

    def subscribe(self, callback: Any, kinds: Iterable[str] | None = None) -> Subscription:
        """Call ``callback(event)`` on every hub event (or those of ``kinds``)."""
        return self._events.subscribe(callback, kinds)

    def _publish(self, event_kind: Any, name: str, **data: Any) -> None:
        self._events.publish(Event(event_kind, name, data))

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
        check_name(name)
        cls = self._types.get(experiment_type)
        impl, inline = self._build(cls, config)
        with self._lock:
            if name in self._experiments:
                raise ExperimentExists(name)
        frame, batch = self._training_data(name, impl, data, inline, fallback=None)
        experiment = Experiment(name, experiment_type, impl)
        with self._lock:
            if name in self._experiments:
                if batch:
                    batch.nack()
                raise ExperimentExists(name)
            self._experiments[name] = experiment
        self._publish("experiment_created", name, experiment_type=experiment_type)
        self._runner.start(experiment, impl, frame, batch, "train")
        return experiment

    def train(self, name: str, config: Mapping[str, Any] | None = None, data: Any = None) -> Experiment:
        """Train again (a new run), with a new config and/or data; defaults to what it has."""
        experiment = self._get(name)
        with experiment._lock:
            if experiment._state in BUSY_STATES:
                raise Busy(f"Experiment {name!r} is {experiment._state}; stop it or wait for it first")
            current = experiment._impl
            fallback = experiment._last_data if experiment._last_data is not None else experiment._train_data
        if config is None:
            impl, inline = type(current)(current.config), None
        else:
            impl, inline = self._build(type(current), config)
        frame, batch = self._training_data(name, impl, data, inline, fallback=fallback)
        self._runner.start(experiment, impl, frame, batch, "train")
        return experiment

    def retrain(self, name: str) -> Experiment:
        """A new run with the same config on the training data plus new observations since."""
        import pandas as pd

        experiment = self._get(name)
        with experiment._lock:
            if experiment._state in BUSY_STATES:
                raise Busy(f"Experiment {name!r} is {experiment._state}; stop it or wait for it first")
            if experiment._train_data is None:
                raise NotReady(f"Experiment {name!r} has no training data to retrain on")
            current = experiment._impl
            parts = [experiment._train_data]
            new_rows = experiment._new_rows
            if new_rows is not None and len(new_rows):
                # the columns the model was trained on; extra columns of new rows are not features
                parts.append(new_rows[[c for c in parts[0].columns if c in new_rows.columns]])
        impl = type(current)(current.config)
        frame = impl.validate_data(pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0])
        self._runner.start(experiment, impl, frame, None, "retrain")
        return experiment

    def _build(self, cls: type[ExperimentType], config: Any) -> tuple[ExperimentType, Any]:
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise InvalidConfig(f"the config must be a mapping (JSON object), got {type(config).__name__}")
        config = dict(config)
        inline = config.pop("data", None)
        return cls(config), inline

    def _training_data(self, name: str, impl: ExperimentType, data: Any, inline: Any,
                       fallback: pd.DataFrame | None) -> tuple[pd.DataFrame, Batch | None]:
        batch = None
        if data is not None:
            frame = to_frame(data, "data")
        elif inline is not None:
            frame = to_frame(inline, "config 'data'")
        else:
            batch = self._datastream.drain(name)
            if batch is not None:
                return queued.training_frame(impl, batch), batch
            elif fallback is not None:
                frame = fallback
            else:
                raise NoData(f"No training data for {name!r}: pass data (a DataFrame or records), put records "
                             f"under config 'data', or publish them to the queue {name!r}")
        try:
            return impl.validate_data(frame), batch
        except Exception:
            if batch is not None:
                batch.nack()
            raise

    # -- observing and waiting ---------------------------------------------------------------
    def status(self, name: str) -> Status:
        import dataclasses

        status = self._get(name).status
        streams = self._streams
        return dataclasses.replace(status, watching=True) if streams and streams.watching(name) else status

    def wait(self, name: str, timeout: float | None = None, *, tracked: bool = False,
             raise_on_failure: bool = True) -> Status:
        """Block until the experiment leaves ``created``/``training`` (and, with ``tracked``, until
        its run is fully logged). Raises TimeoutError, or TrainingFailed when it failed."""
        import time

        experiment = self._get(name)
        deadline = None if timeout is None else time.monotonic() + timeout

        def settled() -> bool:
            if experiment._state in BUSY_STATES:
                return False
            return not (tracked and experiment._state == "ready" and experiment._tracking == "logging")

        with experiment._lock:
            while not settled():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"Experiment {name!r} still {experiment._state} after {timeout} s")
                experiment._changed.wait(remaining if remaining is not None else 1.0)
            status = experiment.status
        if raise_on_failure and status.state == "failed":
            raise TrainingFailed(f"Training of {name!r} failed: {status.error}")
        return status

    # -- stopping and deleting -----------------------------------------------------------------
    def stop_training(self, name: str) -> bool:
        """Stop a running training now (its worker is killed). True if one was running."""
        experiment = self._get(name)
        with experiment._lock:
            job = experiment._job
            if experiment._state not in BUSY_STATES or job is None:
                return False
            job.cancel()
            experiment._set(state="stopped", stage="stopped", ended=now(), error=None)
            status = experiment.status
        self._publish("state_changed", name, status=status.to_dict())
        return True

    def delete(self, name: str) -> None:
        """Stop any training and streaming, and remove the experiment from the hub (its MLflow runs
        stay; messages still in its queue stay too)."""
        if self._streams is not None:
            self._streams.unwatch(name)
        with self._lock:
            experiment = self._experiments.pop(name, None) if isinstance(name, str) else None
            if experiment is None:
                raise ExperimentNotFound(str(name), self._experiments)
        with experiment._lock:
            if experiment._job is not None:
                experiment._job.cancel()
            experiment._set(state="stopped" if experiment._state in BUSY_STATES else experiment._state)
        self._publish("experiment_deleted", name)

    # -- using a trained model ------------------------------------------------------------------
    def _ready(self, name: str) -> Experiment:
        experiment = self._get(name)
        if experiment._state in BUSY_STATES:
            raise Busy(f"Experiment {name!r} is {experiment._state}; wait for it to be ready")
        if experiment._impl.model is None or experiment._evaluation is None:
            detail = f": {experiment._error}" if experiment._error else ""
            raise NotReady(f"Experiment {name!r} has no trained model (state {experiment._state}{detail})")
        return experiment

    def predict(self, name: str, data: Any = None) -> pd.DataFrame:
        """Predict on new rows; with none, on the next batch of the experiment's queue, and with an
        empty queue, the type's default (time_series: the configured horizon ahead)."""
        import pandas as pd

        experiment = self._ready(name)
        impl = experiment._impl
        batch = None
        frame = None
        if data is not None:
            frame = to_frame(data, "data")
        else:
            batch = self._datastream.next_batch(name)
            if batch is not None:
                frame = queued.decode(batch)
        try:
            result = impl.predict(frame)
        except Exception as exc:
            # the model choked on the rows it was given: a data problem, said in the model's words
            error = _predict_failed(batch, exc, "predict on")
            if error is exc:
                raise
            raise error from exc
        try:  # the queued message is acknowledged only once the prediction is recorded
            with experiment._lock:
                if experiment._impl is not impl:  # retrained meanwhile: these predictions are stale
                    if batch:
                        batch.ack()
                    return result
                history = result if experiment._predictions is None else pd.concat(
                    [experiment._predictions, result], ignore_index=True).tail(_PREDICTION_HISTORY)
                changes: dict[str, Any] = {"predictions": history, "figures_stale": True}
                if frame is not None:
                    keep = impl.retrain_rows(result, frame)
                    if len(keep):
                        old = experiment._new_rows
                        changes["new_rows"] = (keep if old is None else pd.concat(
                            [old, keep], ignore_index=True)).tail(_PREDICTION_HISTORY)
                check = self._check_policy(experiment, impl, history)
                experiment._set(**changes)
        except Exception as exc:
            error = _predict_failed(batch, exc, "record the predictions of")
            if error is exc:
                raise
            raise error from exc
        if batch:
            batch.ack()
        self._publish("predictions", name, rows=len(result))
        self._publish("figures_updated", name, kind="model", names=experiment.figure_names)
        if check and check["triggered"]:
            self._publish("state_changed", name, retrain=check)
            self._auto_retrain(experiment, check)
        return result

    def _auto_retrain(self, experiment: Experiment, check: dict[str, Any]) -> None:
        """Retrain because the policy says so. The predict that triggered it succeeded: a retrain
        that cannot start (busy, or refused data) is recorded in the status, not raised."""
        try:
            self.retrain(experiment.name)
        except ExperimentHubError as exc:
            log.warning("automatic retrain of %r did not start: %s", experiment.name, exc)
            with experiment._lock:
                if experiment._retrain is not None:
                    experiment._set(retrain={**experiment._retrain, "error": str(exc)})

    def _check_policy(self, experiment: Experiment, impl: ExperimentType, history: pd.DataFrame) -> dict | None:
        policy = impl.config.get("retrain") or {}
        if not policy.get("enabled"):
            return None
        recent = history.tail(policy["window"])
        value = impl.monitor(recent, policy["metric"])
        scored = len(recent)
        triggered = value is not None and scored >= policy["min_rows"] and value > policy["threshold"]
        check = {"metric": policy["metric"], "value": value, "threshold": policy["threshold"],
                 "rows": scored, "triggered": bool(triggered), "checked_at": now().isoformat()}
        experiment._set(retrain=check)
        return check

    def predictions(self, name: str) -> pd.DataFrame | None:
        """Every prediction since the last training (None before the first)."""
        experiment = self._get(name)
        with experiment._lock:
            return None if experiment._predictions is None else experiment._predictions.copy()

    # -- figures -----------------------------------------------------------------------------------
    def plot_names(self, name: str) -> tuple[list[str], list[str]]:
        """(model figure names, EDA figure names) available now."""
        experiment = self._get(name)
        return experiment.figure_names, experiment.eda_names

    def plot_json(self, name: str, plot_name: str) -> str:
        """A model figure as Plotly JSON (updated with predictions made since training)."""
        experiment = self._get(name)
        self._refresh_figures(experiment)
        with experiment._lock:
            figure = experiment._figures.get(plot_name)
            if figure is None:
                if not experiment._figures and experiment._state in BUSY_STATES:
                    raise Busy(f"Experiment {name!r} is {experiment._state}; its model figures come "
                               f"when training ends")
                if not experiment._figures:
                    detail = f": {experiment._error}" if experiment._error else ""
                    raise NotReady(f"Experiment {name!r} has no trained model, so no model figures "
                                   f"(state {experiment._state}{detail})")
                raise PlotNotFound(name, plot_name, experiment._figures)
            return figure

    def plot_eda_json(self, name: str, plot_name: str) -> str:
        experiment = self._get(name)
        with experiment._lock:
            figure = experiment._eda.get(plot_name)
            if figure is None:
                if not experiment._eda and experiment._state in BUSY_STATES:
                    raise Busy(f"Experiment {name!r} is {experiment._state}; EDA figures come shortly")
                if not experiment._eda:
                    detail = f": {experiment._error}" if experiment._error else ""
                    raise NotReady(f"Experiment {name!r} has no EDA figures (state {experiment._state}{detail})")
                raise PlotNotFound(name, plot_name, experiment._eda, kind="EDA figure")
            return figure

    def plot(self, name: str, plot_name: str) -> go.Figure:
        import plotly.io

        return plotly.io.from_json(self.plot_json(name, plot_name))

    def plot_eda(self, name: str, plot_name: str) -> go.Figure:
        import plotly.io

        return plotly.io.from_json(self.plot_eda_json(name, plot_name))

    def _refresh_figures(self, experiment: Experiment) -> None:
        from .training import figures_to_json

        with experiment._lock:
            if not experiment._figures_stale or experiment._evaluation is None:
                return
            impl, train = experiment._impl, experiment._train_data
            evaluation, predictions = experiment._evaluation, experiment._predictions
        # built without the lock (Plotly is slow on many rows); kept only if nothing changed meanwhile
        figures = figures_to_json(impl.figures(train, evaluation, predictions))
        with experiment._lock:
            if experiment._impl is impl and experiment._predictions is predictions:
                experiment._set(figures=figures, figures_stale=False)

    # -- data and metadata -------------------------------------------------------------------------
    def train_data(self, name: str) -> pd.DataFrame:
        """The data of the current model; while a first training runs, the data it trains on."""
        experiment = self._get(name)
        with experiment._lock:
            data = experiment._train_data if experiment._train_data is not None else experiment._last_data
            if data is None:
                raise NotReady(f"Experiment {name!r} has no training data yet")
            return data.copy()

    def cfg(self, name: str) -> dict[str, Any]:
        return self._get(name).config

    def run_id(self, name: str) -> str:
        experiment = self._get(name)
        if experiment.run_id is None:
            raise NotReady(f"Experiment {name!r} has no MLflow run yet")
        return experiment.run_id

    def exp_id(self, name: str) -> str:
        experiment = self._get(name)
        if experiment.exp_id is None:
            raise NotReady(f"Experiment {name!r} has no MLflow experiment yet")
        return experiment.exp_id

    def runs(self, name: str) -> list[RunInfo]:
        """MLflow runs recorded for ``name``, newest first (works for experiments not in memory)."""
        check_name(name)
        return self._tracking.runs(name)

    # -- MLflow ------------------------------------------------------------------------------------
    def save(self, name: str) -> str:
        """Bring the experiment's MLflow run up to date (predictions, figures); returns the run id."""
        experiment = self._ready(name)
        thread = experiment._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()  # the write-behind logging of the run completes first
        self._refresh_figures(experiment)
        with experiment._lock:
            run_id, tracking = experiment._run_id, experiment._tracking
            figures, predictions = dict(experiment._figures), experiment._predictions
            monitor = experiment._retrain
        if run_id is None:
            raise NotReady(f"Experiment {name!r} has no MLflow run to save to")
        if tracking and tracking.startswith("failed"):
            raise NotReady(f"The MLflow run of {name!r} could not be written ({tracking}); train again")
        records.update(self._tracking, run_id, figures, predictions, monitor)
        self._publish("tracking", name, run_id=run_id, tracking="saved")
        return run_id

    def load(self, name: str, run_id: str | None = None) -> Experiment:
        """Rebuild ``name`` from an MLflow run (its latest finished run when ``run_id`` is None)."""
        check_name(name)
        with self._lock:
            existing = self._experiments.get(name)
        if existing is not None and existing._state in BUSY_STATES:
            raise Busy(f"Experiment {name!r} is {existing._state}; stop it before loading a run into it")
        thread = existing._thread if existing is not None else None
        if run_id is None and thread is not None and thread is not threading.current_thread():
            thread.join()  # the newest run may still be written behind: "latest" must include it
        restored = records.restore(self._tracking, self._types, name, run_id)
        experiment = Experiment(name, restored.impl.type_name, restored.impl)
        with experiment._lock:
            experiment._set(state="ready", stage="loaded", progress=1.0, run_id=restored.run.run_id,
                            exp_id=restored.run.experiment_id, train_data=restored.train_data,
                            evaluation=restored.evaluation, figures=restored.figures, eda=restored.eda,
                            predictions=restored.predictions, tracking="logged", ended=now(),
                            started=_timestamp(restored.run.start_time),
                            runs=len(self._tracking.runs(name)))
        with self._lock:
            current = self._experiments.get(name)
            if current is not None and current._state in BUSY_STATES:
                raise Busy(f"Experiment {name!r} started training meanwhile; load refused")
            self._experiments[name] = experiment
        if current is None:
            self._publish("experiment_created", name, experiment_type=experiment.type_name)
        self._publish("state_changed", name, status=experiment.status.to_dict())
        self._publish("figures_updated", name, kind="model", names=experiment.figure_names)
        return experiment

    # -- plugins -----------------------------------------------------------------------------------
    def health(self, max_age: float = _HEALTH_MAX_AGE) -> dict[str, Any]:
        """The seed's ``/health``: ``{"mlops": {...}, "datastream": {...}}``.

        A check younger than ``max_age`` seconds is reused, and concurrent callers share one
        check: a dashboard polling health from many clients costs one probe per second, not one
        MLflow query per request."""
        import time

        with self._health_lock:
            checked_at, cached = self._health_cache
            if cached is not None and time.monotonic() - checked_at < max_age:
                return copy.deepcopy(cached)
            result = {"mlops": self._tracking.health(), "datastream": self._datastream.health()}
            self._health_cache = (time.monotonic(), result)
            return copy.deepcopy(result)

    def publish(self, name: str, data: Any) -> int:
        """Send a table to the experiment's queue as one message; returns the number of rows."""
        from .tables import to_records

        check_name(name, "queue name")
        frame = to_frame(data, "data")
        if len(frame) == 0:
            raise NoData(f"Nothing to publish to queue {name!r}: the table has 0 rows")
        import json

        self._datastream.publish(name, json.dumps(to_records(frame)).encode())
        return len(frame)

    def flush(self, queue: str) -> int:
        """Empty a queue; returns how many messages were dropped."""
        check_name(queue, "queue name")
        return self._datastream.purge(queue)

    def close(self, timeout: float = 60.0) -> None:
        """Stop every training, let write-behind MLflow logging finish (up to ``timeout`` s), and
        close plugin connections."""
        import time

        self._stop_streaming()
        with self._lock:
            experiments = list(self._experiments.values())
        for experiment in experiments:
            if experiment._state in BUSY_STATES:
                self.stop_training(experiment.name)
        deadline = time.monotonic() + timeout
        for experiment in experiments:
            thread = experiment._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._datastream.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- datastream: streaming mode and malformed messages ------------------------------------
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
                self._streams = Streaming(self)
            return self._streams

    def _stop_streaming(self) -> None:
        if self._streams is not None:
            self._streams.close()


_open_hubs: weakref.WeakSet[Hub] = weakref.WeakSet()


@atexit.register
def _close_open_hubs() -> None:
    """At interpreter exit, finish the MLflow runs being written (daemon threads die mid-write)."""
    for hub in list(_open_hubs):
        try:
            hub.close(timeout=30)
        except Exception:
            log.warning("closing %r at exit failed", hub, exc_info=True)


def _default_tracking(settings: Settings) -> TrackingPlugin:
    from .plugins.mlflow_tracking import MlflowTracking

    artifact_root = settings.artifact_root if settings.uses_embedded_tracking else None
    return MlflowTracking(settings.tracking_uri, artifact_root)


def _default_datastream(settings: Settings) -> DatastreamPlugin:
    if settings.rabbitmq_url:
        from .plugins.rabbitmq_stream import RabbitMQDatastream

        return RabbitMQDatastream(settings.rabbitmq_url)
    from .plugins.memory_stream import MemoryDatastream

    return MemoryDatastream()


def _predict_failed(batch: Batch | None, exc: Exception, doing: str) -> Exception:
    """Settle a queued batch whose predict failed (see queued.settle_failed) and return the error to
    raise: the hub's own as is, anything else as a DataError in the library's words."""
    if batch:
        queued.settle_failed(batch, exc)
    if isinstance(exc, ExperimentHubError):
        return exc
    return DataError(f"Could not {doing} these rows: {type(exc).__name__}: {exc}")


def _timestamp(seconds: float | None) -> Any:
    import datetime as dt

    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)
