"""The hub: one object in the kernel that every face (cells, widgets, REST) calls.

A facade: the catalogue (:mod:`.catalogue`) owns the experiments by name, each experiment owns its
state machine (:mod:`.experiment`), and each kind of work has its module: starting and stopping
trainings (:mod:`.trainings`, through the runner, the admission queue and the executor),
predictions and the retrain policy (:mod:`.predicting`), figures (:mod:`.figures`), save / load /
restore (:mod:`.persistence`), streaming (:mod:`.streaming`), the leaderboard (:mod:`.comparing`).

Thread-safety: the catalogue and each experiment have their own lock, never held during I/O
(MLflow, the datastream, fitting); events are published after the locks are released.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import logging
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload

from . import comparing, figures, records, recovery
from .admission import JobQueue
from .catalogue import Catalogue
from .errors import NoData, NotReady, TrainingFailed
from .events import Event, EventBus, Subscription
from .executor import follow_capacity, make_executor, queue_capacity
from .health import HealthCheck
from .persistence import Persistence
from .predicting import Predictor
from .registry import ExperimentTypeRegistry
from .runner import TrainingRunner
from .settings import Settings
from .sweeping import Sweeps
from .tables import to_frame, to_records
from .tracking_writer import BoundedTracking
from .trainings import Trainings

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from .executor import Executor
    from .experiment import Experiment
    from .experiments.base import ExperimentType
    from .plugins.protocols import DatastreamPlugin, RunInfo, TrackingPlugin
    from .status import Status
    from .streaming import Streaming

log = logging.getLogger(__name__)


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
        self._events = EventBus()
        self._catalogue = Catalogue(settings.max_experiments, reserved_names)
        self._types = ExperimentTypeRegistry(settings.experiment_types)
        self._store = tracking or default_tracking(settings)
        self._tracking = BoundedTracking(self._store, settings.tracking_writers)  # every write goes through it
        self._datastream = datastream or default_datastream(settings)
        self._executor: Executor = make_executor(settings, dask_client)
        self._queue = JobQueue(queue_capacity(settings, self._executor))
        follow_capacity(settings, self._executor, self._queue)
        self._runner = TrainingRunner(self._tracking, self._executor, self._queue, self._publish,
                                      settings.defer_figures)
        self._trainings = Trainings(self._catalogue, self._types, self._datastream, self._runner, self._publish,
                                    settings.max_rows)
        self._persistence = Persistence(self._tracking, self._types, self._catalogue, self._runner, self._publish,
                                        trust_pickles=settings.trust_pickles)
        if settings.trust_pickles:
            log.warning("trust_pickles is on: models stored as pickles are loaded, and a pickle can run any code "
                        "when it is loaded; only for a tracking store nobody else can write to")
        self._sweeps = Sweeps(self._tracking, self._executor, self._queue, self._runner, self._publish)
        self._predictor = Predictor(self._datastream, self._publish,
                                    lambda name, trigger: self.retrain(name, trigger=trigger))
        self._streams_lock = threading.Lock()
        self._streams: Streaming | None = None  # watchers, made on the first watch()
        self._health = HealthCheck(lambda: {"mlops": self._tracking.health(), "datastream": self._datastream.health(),
                                            "executor": self._executor_health()})
        if warm_up:
            threading.Thread(target=self._warm_up, name="experimenthub-warm-up", daemon=True).start()
        _open_hubs.add(self)

    def _warm_up(self) -> None:
        """Pay the slow first steps off the caller's thread: the executor (the worker server with its
        preloaded libraries), the experiment types, the MLflow client (which creates the sqlite
        schema), and the repair of runs a crashed process of this host left RUNNING."""
        def warm_types() -> None:
            for name in self._types.names():
                self._types.get(name).warm_up()

        def connect() -> None:  # MLflow first: /health says "starting" until its schema exists
            self._tracking.health()
            recovery.reap_orphans(self._tracking)

        def run(*steps: Any) -> None:
            for step in steps:
                try:
                    step()
                except Exception:  # warming is an optimisation; the real call reports errors
                    log.debug("warm-up step failed", exc_info=True)

        tracking = threading.Thread(target=run, args=(connect,), name="experimenthub-warm-up-tracking", daemon=True)
        tracking.start()
        run(self._executor.warm_up, warm_types)
        tracking.join()
        run(self.freeze_gc)

    def freeze_gc(self) -> None:
        """gc.freeze() the objects alive now (the imported libraries, mostly), unless the settings say
        not to: later full collections skip them, so they no longer pause every thread."""
        if self.settings.freeze_gc:
            import gc

            gc.collect()
            gc.freeze()

    def __repr__(self) -> str:
        from .redact import redact_uri

        return (f"<{type(self).__name__} {len(self._catalogue)} experiments, "
                f"tracking={redact_uri(self._tracking.uri)}, home={self.settings.home}>")

    # -- types, registry and events ----------------------------------------------------------------
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
        return self._catalogue.snapshot()

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
        return self._catalogue.check_name(name, what)

    def _publish(self, events: Iterable[Event]) -> None:
        for event in events:
            self._events.publish(event)

    # -- creating, training, stopping, deleting ------------------------------------------------------
    def create_experiment(self, name: str, experiment_type: str, config: Mapping[str, Any] | None = None,
                          data: Any = None) -> Experiment:
        """Validate, register and start training in the background; returns at once. Training data:
        ``data`` (a DataFrame or records), else ``config["data"]`` (inline records), else the
        datastream queue named after the experiment."""
        return self._trainings.create(name, experiment_type, config, data)

    def create_experiments(self, experiment_type: str, config: Mapping[str, Any] | None, data: Any,
                           by: str | None = None, prefix: str = "") -> list[Experiment]:
        """One experiment per group: per distinct value of column ``by`` in a long table (the column is
        dropped), or per entry of a mapping name -> table. Names come from the values, made valid
        (``"Store 1"`` -> ``"Store_1"``) after ``prefix``. Every group is validated before any starts:
        GroupsRejected names every bad group and nothing is created. They train through the queue;
        ``wait(names)`` waits for all."""
        return self._trainings.create_many(experiment_type, config, data, by, prefix)

    def train(self, name: str, config: Mapping[str, Any] | None = None, data: Any = None) -> Experiment:
        """Train again (a new run), with a new config and/or data; defaults to what it has."""
        return self._trainings.train(name, config, data)

    def retrain(self, name: str, *, trigger: str = "manual") -> Experiment:
        """A new run with the same config on the training data plus new observations since; the run
        records the run it replaced, ``trigger`` (``manual`` or the retrain policy's check) and how
        many rows were added."""
        return self._trainings.retrain(name, trigger)

    def sweep(self, name: str, params: Any, metric: str | None = None) -> Experiment:
        """Fit one candidate per parameter set (``params``: a list of dicts, or a grid: a dict of
        lists), through the queue and the executor (in parallel, stopped together by
        ``stop_training``), ranked by ``metric`` (time_series: ``cv_mape``, fault_detection with a
        label: ``f1`` on a held-out part, by default); the best becomes the experiment's model. Returns
        at once; every candidate is a child run of the sweep's run in MLflow (``sweep_candidates``)."""
        from . import sweeping

        experiment = self._catalogue.get(name)
        current, train_data = experiment.trained(), experiment.train_data()
        instances, chosen = sweeping.plan(current, params, metric, self.settings.max_sweep_candidates)
        frame = instances[0].validate_data(train_data)
        self._sweeps.start(experiment, instances, frame, chosen)
        return experiment

    def sweep_candidates(self, name: str) -> pd.DataFrame:
        """The candidates of the experiment's latest sweep (params, metrics, run ids), best first."""
        return comparing.sweep_candidates(self._tracking, self.check_name(name))

    @overload
    def stop_training(self, name: str) -> bool: ...  # type: ignore[overload-overlap]

    @overload
    def stop_training(self, name: Iterable[str]) -> dict[str, bool]: ...

    def stop_training(self, name: str | Iterable[str]) -> bool | dict[str, bool]:
        """Stop a running (or queued: it never starts) training now; its worker is killed. True if
        one was running. With a list of names: ``{name: stopped}`` (unknown names refused first)."""
        if isinstance(name, str):
            return self._trainings.stop(self._catalogue.get(name))
        return {e.name: self._trainings.stop(e) for e in self._catalogue.get_all(name)}

    def delete(self, name: str | Iterable[str]) -> None:
        """Stop any training and streaming, and remove the experiment (or each of a list of names;
        unknown names are refused before any is deleted) from the hub. Its MLflow runs stay, marked
        so that ``restore`` skips them; messages still in its queue stay too."""
        for experiment in self._catalogue.get_all([name] if isinstance(name, str) else name):
            if self._streams is not None:
                self._streams.unwatch(experiment.name)
            self._catalogue.remove(experiment.name)
            self._publish([Event("experiment_deleted", experiment.name)])
            if experiment.run_id is not None:
                mark = functools.partial(self._tracking.set_experiment_tag, experiment.name, records.TAG_DELETED,
                                         repr(time.time()))
                self._runner.write_later(experiment, "mark the MLflow experiment deleted", mark)

    # -- observing and waiting ---------------------------------------------------------------------
    def status(self, name: str) -> Status:
        status = self._catalogue.get(name).status
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
        its run is fully logged). Raises TimeoutError, or TrainingFailed when it failed. With a list
        of names: waits for all, showing progress (a bar in a notebook, lines in a script;
        ``progress=False`` hides it), and returns ``{name: status}``; a failed one does not raise."""
        from .waiting import wait_many

        if not isinstance(name, str):
            experiments = {e.name: e for e in self._catalogue.get_all(name)}
            return wait_many(experiments, self.subscribe, timeout, tracked, progress)
        status = self._catalogue.get(name).wait(timeout, tracked=tracked)
        if raise_on_failure and status.state == "failed":
            raise TrainingFailed(f"Training of {name!r} failed: {status.error}")
        return status

    # -- using a trained model ---------------------------------------------------------------------
    def predict(self, name: str, data: Any = None) -> pd.DataFrame:
        """Predict on new rows; with none, on the next batch of the experiment's queue, and with an
        empty queue, the type's default (time_series: the configured horizon ahead)."""
        return self._predictor.predict(self._catalogue.get(name), data)

    def predictions(self, name: str) -> pd.DataFrame | None:
        """Every prediction since the last training (None before the first)."""
        return self._catalogue.get(name).predictions()

    def evaluation(self, name: str) -> pd.DataFrame:
        """The out-of-sample evaluation of the current model: time_series, one row per fold and
        horizon step (actual, forecast, interval, seasonal-naive baseline); fault_detection, the
        confusion counts on the held-out rows. NotReady when the config has no ``evaluate`` section."""
        experiment = self._catalogue.get(name)
        table = experiment.backtest()
        if table is None:
            experiment.trained()  # Busy / NotReady first when there is no model at all
            raise NotReady(f"Experiment {name!r} has no out-of-sample evaluation: add an 'evaluate' section to its "
                           f"config (time_series: {{'horizon': H, 'folds': K}}; fault_detection: "
                           f"{{'holdout': 0.3}}) and train it again")
        return table

    def plot_names(self, name: str) -> tuple[list[str], list[str]]:
        """(model figure names, EDA figure names); a figure is built when it is first asked for."""
        experiment = self._catalogue.get(name)
        return experiment.figure_names, experiment.eda_names

    def plot_json(self, name: str, plot_name: str) -> str:
        """A model figure as Plotly JSON (updated with predictions made since training)."""
        return figures.model_figure(self._catalogue.get(name), plot_name, self._log_built)

    def plot_eda_json(self, name: str, plot_name: str) -> str:
        return figures.eda_figure(self._catalogue.get(name), plot_name, self._log_built)

    def _log_built(self, experiment: Experiment, folder: str, built: dict[str, str]) -> None:
        """Figures built on request join the experiment's run, written in the background."""
        run_id = experiment.model_run_id  # not a newer training's run: these show the model in use
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
        return self._catalogue.get(name).train_data()

    def cfg(self, name: str) -> dict[str, Any]:
        return self._catalogue.get(name).config

    def run_id(self, name: str) -> str:
        run_id = self._catalogue.get(name).run_id
        if run_id is None:
            raise NotReady(f"Experiment {name!r} has no MLflow run yet")
        return run_id

    def exp_id(self, name: str) -> str:
        exp_id = self._catalogue.get(name).exp_id
        if exp_id is None:
            raise NotReady(f"Experiment {name!r} has no MLflow experiment yet")
        return exp_id

    def runs(self, name: str) -> list[RunInfo]:
        """MLflow runs recorded for ``name``, newest first (works for experiments not in memory)."""
        self.check_name(name)
        return self._tracking.runs(name)

    def compare(self, names: str | Iterable[str] | None = None, metric: str | None = None) -> pd.DataFrame:
        """A leaderboard from the tracking store: one row per experiment's latest model run (all, or
        ``names``), or for one name (a string) one row per model run with its lineage: type, model
        type, params, metrics, run id, state and time, best first by ``metric`` when given. Works for
        experiments the hub does not hold."""
        wanted = names if names is None or isinstance(names, str) else list(names)
        for one in [wanted] if isinstance(wanted, str) else wanted or []:
            self.check_name(one)
        return comparing.leaderboard(self._tracking, wanted, metric, self._catalogue.states())

    # -- MLflow ------------------------------------------------------------------------------------
    def save(self, name: str) -> str:
        """Bring the experiment's MLflow run up to date (predictions, figures); returns the run id."""
        return self._persistence.save(name)

    def load(self, name: str, run_id: str | None = None) -> Experiment:
        """Rebuild ``name`` from an MLflow run (its latest finished model run when ``run_id`` is None)."""
        return self._persistence.load(name, run_id)

    def restore(self, names: str | Iterable[str] | None = None) -> list[str]:
        """Bring back from the tracking store every experiment ExperimentHub wrote and did not delete
        (or the named ones), each from its latest finished model run: listed at once (``ready``, stage
        ``stored``) and loaded on first use. Names the hub holds stay as they are. Returns the names."""
        return self._persistence.restore(names)

    # -- plugins -----------------------------------------------------------------------------------
    def _executor_health(self) -> dict[str, Any]:
        """The executor's health with the training queue: running, waiting, and how many may run."""
        health = self._executor.health()
        trainings = {**self._queue.counts(), "capacity": self._queue.capacity}
        return {**health, "details": {**health.get("details", {}), "trainings": trainings}}

    def health(self, max_age: float | None = None) -> dict[str, Any]:
        """The seed's ``/health``: ``{"mlops": {...}, "datastream": {...}}`` (and ``"executor"``), from
        the last probe of the plugins; a probe older than ``max_age`` s (default 1) is refreshed in the
        background (``max_age=0``: probe now and wait for it). See :mod:`experimenthub.health`."""
        return self._health.get(max_age)

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
        for experiment in self._catalogue.snapshot().values():
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
        dead-letter queue, batches meeting a busy experiment wait. False if already watching."""
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

        with self._streams_lock:
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
