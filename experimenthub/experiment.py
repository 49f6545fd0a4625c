"""One experiment inside the hub and the state machine it owns.

An :class:`Experiment` is the only owner of its state. Other modules read it through properties
and snapshots, and change it only through the named transitions below; each takes the
experiment's lock, checks the state it starts from (raising the typed errors of
:mod:`experimenthub.errors`, or answering "stale" for a job that was stopped or replaced
meanwhile) and returns the events to publish, which the caller publishes after the lock is gone.

::

    created ─queue→ training (stage "queued", then "starting", the job's stages) ─complete→ ready
                        │                       └─fail→ failed
                        └─stop→ stopped
    ready | failed | stopped ─queue→ training (a new run)          any ─retire→ (out of the hub)
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .errors import Busy, ExperimentNotFound, NotReady
from .events import Event
from .status import BUSY_STATES, Status, now

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

    from .experiments.base import Evaluation, ExperimentType

__all__ = ["BUSY_STATES", "Experiment", "Job", "Status", "now"]


class Job(Protocol):
    """What the experiment needs of its current training job: to stop it and to describe it."""

    @property
    def cancelled(self) -> bool: ...

    def cancel(self) -> None: ...

    @property
    def queue_position(self) -> int | None: ...

    @property
    def where(self) -> str | None: ...


class Experiment:
    def __init__(self, name: str, type_name: str, type_instance: ExperimentType | None,
                 model_type: str | None = None) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._load_lock = threading.Lock()
        self.name = name
        self.type_name = type_name
        self._type_instance = type_instance  # None while stored (restored lazily, see stored())
        self._model_type = model_type or (_model_type_of(type_instance) if type_instance is not None else "")
        self._loader: Callable[[], dict[str, Any]] | None = None
        self._stored_metrics: dict[str, float] = {}
        self._state = "created"
        self._stage = ""
        self._progress = 0.0
        self._error: str | None = None
        self._run_id: str | None = None  # the latest run (a training's, as soon as it is open)
        self._model_run_id: str | None = None  # the run of the model in use (figures, saves go there)
        self._exp_id: str | None = None
        self._started: dt.datetime | None = None
        self._ended: dt.datetime | None = None
        self._tracking: str | None = None  # None, "logging", "logged", or "failed: <reason>"
        self._train_data: pd.DataFrame | None = None  # what the current model was trained on
        self._last_data: pd.DataFrame | None = None  # what the latest job (even a failed one) used
        self._evaluation: Evaluation | None = None
        self._figure_names: list[str] = []  # every model figure, built or deferred
        self._eda_names: list[str] = []
        self._figures: dict[str, str] = {}  # the model figures built so far (Plotly JSON)
        self._eda: dict[str, str] = {}
        self._figures_stale = False
        self._predictions: pd.DataFrame | None = None  # every prediction since the last training
        self._new_rows: pd.DataFrame | None = None  # new observations kept for retraining
        self._retrain: dict[str, Any] | None = None  # the last retrain-policy check
        self._job: Job | None = None
        self._runs = 0
        self._retired = False

    # -- reading ---------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def busy(self) -> bool:
        """Created or training: a job owns the experiment."""
        return self._state in BUSY_STATES

    @property
    def config(self) -> dict[str, Any]:
        self._ensure_loaded()
        with self._lock:
            return copy.deepcopy(self._instance().config)

    @property
    def model_type(self) -> str:
        return self._model_type

    @property
    def type_instance(self) -> ExperimentType:
        """The experiment type object holding the current config and fitted model."""
        self._ensure_loaded()
        return self._instance()

    @property
    def model(self) -> Any:
        """The fitted model (a Prophet model, a scikit-learn pipeline); None before training."""
        return self.type_instance.model

    @property
    def stored(self) -> bool:
        """Listed from the tracking store and not loaded yet (``hub.restore``): the first use loads it."""
        return self._loader is not None

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def model_run_id(self) -> str | None:
        """The run of the model in use: differs from ``run_id`` while a new training's run is open
        and after a training that failed or was stopped (its run holds no model)."""
        return self._model_run_id

    @property
    def exp_id(self) -> str | None:
        return self._exp_id

    @property
    def tracking(self) -> str | None:
        return self._tracking

    @property
    def runs(self) -> int:
        """How many trainings this experiment has started (its MLflow runs number them)."""
        return self._runs

    @property
    def status(self) -> Status:
        with self._lock:
            metrics = dict(self._evaluation.metrics) if self._evaluation else dict(self._stored_metrics)
            job = self._job if self.busy else None
            return Status(
                name=self.name, experiment_type=self.type_name, model_type=self.model_type,
                state=self._state, stage=self._stage, progress=round(self._progress, 4), error=self._error,
                run_id=self._run_id, exp_id=self._exp_id, started_at=self._started, ended_at=self._ended,
                tracking=self._tracking, metrics=metrics, retrain=dict(self._retrain) if self._retrain else None,
                queue_position=job.queue_position if job is not None else None,
                executor=self._job.where if self._job is not None else None,  # where it runs, or ran
            )

    @property
    def figure_names(self) -> list[str]:
        with self._lock:
            return list(self._figure_names)

    @property
    def eda_names(self) -> list[str]:
        with self._lock:
            return list(self._eda_names)

    def figure(self, plot_name: str) -> str | None:
        """A model figure's Plotly JSON, or None when it is not built (or not a figure of this one)."""
        self._ensure_loaded()
        with self._lock:
            return self._figures.get(plot_name)

    def eda_figure(self, plot_name: str) -> str | None:
        self._ensure_loaded()
        with self._lock:
            return self._eda.get(plot_name)

    def missing_figure_reason(self, kind: str) -> Busy | NotReady | None:
        """Why there are no figures of ``kind`` ("model" or "EDA") at all, or None when there are."""
        with self._lock:
            present = self._figure_names if kind == "model" else self._eda_names
            if present:
                return None
            if self.busy:
                later = "when training ends" if kind == "model" else "shortly"
                return Busy(f"Experiment {self.name!r} is {self._state}; its {kind} figures come {later}")
            detail = f": {self._error}" if self._error else ""
            what = "no trained model, so no model figures" if kind == "model" else "no EDA figures"
            return NotReady(f"Experiment {self.name!r} has {what} (state {self._state}{detail})")

    def trained(self) -> ExperimentType:
        """The type instance with a fitted model, for predicting and saving; Busy while training,
        NotReady without a model."""
        self._ensure_loaded()
        with self._lock:
            if self.busy:
                raise Busy(f"Experiment {self.name!r} is {self._state}; wait for it to be ready")
            if self._instance().model is None or self._evaluation is None:
                detail = f": {self._error}" if self._error else ""
                raise NotReady(f"Experiment {self.name!r} has no trained model (state {self._state}{detail})")
            return self._instance()

    def training_fallback(self) -> tuple[ExperimentType, pd.DataFrame | None]:
        """For a new training: the current type instance and the data to reuse when none is given
        (the latest job's, else the current model's). Busy while a job runs."""
        self._ensure_loaded()
        with self._lock:
            self._check_idle()
            data = self._last_data if self._last_data is not None else self._train_data
            return self._instance(), data

    def retraining_data(self) -> tuple[ExperimentType, pd.DataFrame, pd.DataFrame | None]:
        """For a retrain: the type instance, the model's training data and the new observations."""
        self._ensure_loaded()
        with self._lock:
            self._check_idle()
            if self._train_data is None:
                raise NotReady(f"Experiment {self.name!r} has no training data to retrain on")
            return self._instance(), self._train_data, self._new_rows

    def train_data(self) -> pd.DataFrame:
        """The data of the current model; while a first training runs, the data it trains on."""
        self._ensure_loaded()
        with self._lock:
            data = self._train_data if self._train_data is not None else self._last_data
            if data is None:
                raise NotReady(f"Experiment {self.name!r} has no training data yet")
            return data.copy()

    def backtest(self) -> pd.DataFrame | None:
        """The out-of-sample evaluation table of the current model (None without one)."""
        self._ensure_loaded()
        with self._lock:
            table = self._evaluation.backtest if self._evaluation is not None else None
            return None if table is None else table.copy()

    def predictions(self) -> pd.DataFrame | None:
        self._ensure_loaded()
        with self._lock:
            return None if self._predictions is None else self._predictions.copy()

    def figure_inputs(self, unbuilt: bool = True) -> tuple[ExperimentType, pd.DataFrame, Evaluation,
                                                           pd.DataFrame | None] | None:
        """What the model figures are built from, when predictions made them out of date (or, with
        ``unbuilt``, some were never built); else None."""
        self._ensure_loaded()
        with self._lock:
            if self._evaluation is None or self._train_data is None:
                return None
            complete = not unbuilt or set(self._figure_names) <= set(self._figures)
            if not self._figures_stale and complete:
                return None
            return self._instance(), self._train_data, self._evaluation, self._predictions

    def eda_inputs(self) -> tuple[ExperimentType, pd.DataFrame] | None:
        """What the EDA figures are built from, when some were never built; else None."""
        self._ensure_loaded()
        with self._lock:
            if self._train_data is None or set(self._eda_names) <= set(self._eda):
                return None
            return self._instance(), self._train_data

    def save_inputs(self) -> tuple[str, dict[str, str], pd.DataFrame | None, dict[str, Any] | None]:
        """``(run id, figures, predictions, last retrain check)`` for bringing the run up to date."""
        self._ensure_loaded()
        with self._lock:
            if self._model_run_id is None:
                raise NotReady(f"Experiment {self.name!r} has no MLflow run to save to")
            if self._tracking and self._tracking.startswith("failed"):
                raise NotReady(f"The MLflow run of {self.name!r} could not be written ({self._tracking}); "
                               f"train again")
            return self._model_run_id, dict(self._figures), self._predictions, self._retrain

    def settled(self, tracked: bool = False) -> bool:
        """No job owns the experiment (with ``tracked``: and its run is not being written)."""
        with self._lock:
            if self.busy:
                return False
            return not (tracked and self._state == "ready" and self._tracking == "logging")

    def wait(self, timeout: float | None = None, *, tracked: bool = False) -> Status:
        """Block until no job owns the experiment (with ``tracked``, also until its run is written
        behind). TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self.settled(tracked):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"Experiment {self.name!r} still {self._state} after {timeout} s")
                self._changed.wait(remaining if remaining is not None else 1.0)
            return self.status

    def __repr__(self) -> str:
        return f"<Experiment {self.name!r} {self.type_name}/{self.model_type} {self._state}>"

    # -- transitions of a training job -----------------------------------------------------------
    def queue(self, job: Job, data: pd.DataFrame) -> tuple[int, list[Event]]:
        """A training job takes the experiment: ``training``, stage ``queued``. Returns the run's
        number and the events. ExperimentNotFound when the experiment left the hub, Busy when a job
        owns it already."""
        with self._lock:
            if self._retired:
                raise ExperimentNotFound(self.name)
            if self.busy and self._job is not None:
                raise Busy(f"Experiment {self.name!r} is already training")
            self._runs += 1
            self._update(job=job, last_data=data, state="training", stage="queued", progress=0.0, error=None,
                         started=now(), ended=None, tracking=None)
            return self._runs, [self._state_event()]

    def begin(self, job: Job) -> list[Event]:
        """The job left the queue and starts running."""
        return self.report_progress(job, "starting", 0.01)

    def report_progress(self, job: Job, stage: str, fraction: float) -> list[Event]:
        with self._lock:
            if not self._owned_by(job):
                return []
            self._update(stage=stage, progress=float(fraction))
        return [Event("progress", self.name, {"stage": stage, "progress": float(fraction)})]

    def attach_eda(self, job: Job, eda: dict[str, str]) -> list[Event]:
        """EDA figures came from the job ahead of its result."""
        with self._lock:
            if not self._owned_by(job):
                return []
            self._update(eda=dict(eda), eda_names=list(eda))
        return [Event("figures_updated", self.name, {"kind": "eda", "names": list(eda)})]

    def attach_run(self, job: Job, run_id: str, exp_id: str) -> None:
        """The job's MLflow run is open."""
        with self._lock:
            if self._job is job:
                self._update(run_id=run_id, exp_id=exp_id)

    def complete(self, job: Job, type_instance: ExperimentType, evaluation: Evaluation, data: pd.DataFrame,
                 figures: dict[str, str], eda: dict[str, str], figure_names: list[str],
                 eda_names: list[str]) -> list[Event] | None:
        """The job's model is ready (its run is written behind: ``tracking: logging``); ``figures``
        and ``eda`` hold those built so far of ``figure_names`` and ``eda_names``. None when the job
        was stopped or replaced meanwhile: nothing changed."""
        with self._lock:
            if not self._owned_by(job):
                return None
            self._update(type_instance=type_instance, model_type=_model_type_of(type_instance),
                         evaluation=evaluation, figures=dict(figures), eda=dict(eda),
                         figure_names=list(figure_names), eda_names=list(eda_names), train_data=data,
                         predictions=None, new_rows=None, figures_stale=False, state="ready", stage="done",
                         model_run_id=self._run_id,
                         progress=1.0, ended=now(), tracking="logging")
            state = self._state_event()
        return [state, Event("figures_updated", self.name, {"kind": "model", "names": list(figure_names)})]

    def fail(self, job: Job, error: BaseException) -> list[Event]:
        """The job failed; nothing changes when it was stopped or replaced meanwhile."""
        with self._lock:
            if self._job is not job or not self.busy:
                return []
            self._update(state="failed", stage="failed", error=str(error) or type(error).__name__, ended=now())
            return [self._state_event()]

    def stop(self) -> list[Event] | None:
        """Stop the running (or queued) job: ``stopped``. None when no job was running."""
        with self._lock:
            job = self._job
            if not self.busy or job is None:
                return None
            job.cancel()
            self._update(state="stopped", stage="stopped", ended=now(), error=None)
            return [self._state_event()]

    def tracked(self, run_id: str, outcome: str) -> list[Event]:
        """The run's write-behind logging ended (``logged`` or ``failed: ...``)."""
        with self._lock:
            if self._run_id == run_id:
                self._update(tracking=outcome)
        return [Event("tracking", self.name, {"run_id": run_id, "tracking": outcome})]

    def retire(self) -> None:
        """The experiment left the hub (deleted, or replaced by a load): its job stops and no new
        job can take it."""
        with self._lock:
            self._retired = True
            if self.busy:  # a job that ended has nothing to stop (on Dask a cancel costs a scheduler event)
                if self._job is not None:
                    self._job.cancel()
                self._update(state="stopped")

    # -- transitions of a trained model ----------------------------------------------------------
    def record_predictions(self, type_instance: ExperimentType, predictions: pd.DataFrame,
                           new_rows: pd.DataFrame | None, history_limit: int,
                           policy: Any = None) -> tuple[bool, dict[str, Any] | None]:
        """Add predictions (and the new observations worth retraining on) to the history; the model
        figures are out of date from now on. ``policy(history)`` is the retrain-policy check, made on
        the new history under the lock. Returns ``(recorded, check)``; not recorded when the model
        was replaced since the prediction was made."""
        import pandas as pd

        with self._lock:
            if self._type_instance is not type_instance:
                return False, None
            history = predictions if self._predictions is None else pd.concat(
                [self._predictions, predictions], ignore_index=True).tail(history_limit)
            changes: dict[str, Any] = {"predictions": history, "figures_stale": True}
            if new_rows is not None and len(new_rows):
                old = self._new_rows
                changes["new_rows"] = (new_rows if old is None else pd.concat(
                    [old, new_rows], ignore_index=True)).tail(history_limit)
            check = policy(history) if policy is not None else None
            if check is not None:
                changes["retrain"] = check
            self._update(**changes)
            return True, check

    def note_retrain_error(self, message: str) -> None:
        """An automatic retrain could not start; the last check says why."""
        with self._lock:
            if self._retrain is not None:
                self._update(retrain={**self._retrain, "error": message})

    def refresh_figures(self, type_instance: ExperimentType, predictions: pd.DataFrame | None,
                        figures: dict[str, str]) -> dict[str, str] | None:
        """Model figures (re)built from ``predictions``; kept only if the model and predictions are
        still those they were built from. Returns those built for the first time (None: not kept)."""
        with self._lock:
            if self._type_instance is not type_instance or self._predictions is not predictions:
                return None
            first = {name: figure for name, figure in figures.items() if name not in self._figures}
            self._update(figures={**self._figures, **figures}, figures_stale=False)
            return first

    def attach_eda_figures(self, type_instance: ExperimentType, eda: dict[str, str]) -> dict[str, str] | None:
        """EDA figures built on request; returns those built for the first time (None: not kept)."""
        with self._lock:
            if self._type_instance is not type_instance:
                return None
            first = {name: figure for name, figure in eda.items() if name not in self._eda}
            self._update(eda={**self._eda, **eda})
            return first

    def restore(self, type_instance: ExperimentType, *, run_id: str, exp_id: str, started: dt.datetime | None,
                train_data: pd.DataFrame, evaluation: Evaluation, figures: dict[str, str], eda: dict[str, str],
                figure_names: list[str], eda_names: list[str], predictions: pd.DataFrame | None,
                runs: int) -> list[Event]:
        """A new experiment rebuilt from a finished MLflow run: ``ready``, stage ``loaded``."""
        with self._lock:
            if self._state != "created" or self._job is not None:
                raise Busy(f"Experiment {self.name!r} is {self._state}; only a new experiment is restored")
            self._fill(type_instance, run_id=run_id, exp_id=exp_id, started=started, train_data=train_data,
                       evaluation=evaluation, figures=figures, eda=eda, figure_names=figure_names,
                       eda_names=eda_names, predictions=predictions, runs=runs)
            return [self._state_event(),
                    Event("figures_updated", self.name, {"kind": "model", "names": list(figure_names)})]

    def _fill(self, type_instance: ExperimentType, *, run_id: str, exp_id: str, started: dt.datetime | None,
              train_data: pd.DataFrame, evaluation: Evaluation, figures: dict[str, str], eda: dict[str, str],
              figure_names: list[str], eda_names: list[str], predictions: pd.DataFrame | None, runs: int) -> None:
        self._update(type_instance=type_instance, model_type=_model_type_of(type_instance), state="ready",
                     stage="loaded", progress=1.0, run_id=run_id, model_run_id=run_id, exp_id=exp_id,
                     train_data=train_data,
                     evaluation=evaluation, figures=dict(figures), eda=dict(eda), figure_names=list(figure_names),
                     eda_names=list(eda_names), predictions=predictions, tracking="logged", started=started,
                     ended=now(), runs=runs)

    # -- stored experiments (hub.restore): listed at once, loaded on first use ---------------------
    @classmethod
    def from_store(cls, name: str, type_name: str, model_type: str, *, run_id: str, exp_id: str,
                   started: dt.datetime | None, metrics: dict[str, float], figure_names: list[str],
                   eda_names: list[str], loader: Callable[[], dict[str, Any]]) -> Experiment:
        """A ``ready`` experiment known from its run (stage ``stored``); ``loader()`` returns the
        keyword arguments of :meth:`restore` (the model, data, figures), called on first use."""
        experiment = cls(name, type_name, None, model_type)
        with experiment._lock:
            experiment._update(state="ready", stage="stored", progress=1.0, run_id=run_id, model_run_id=run_id,
                               exp_id=exp_id,
                               started=started, tracking="logged", stored_metrics=dict(metrics),
                               figure_names=list(figure_names), eda_names=list(eda_names), loader=loader)
        return experiment

    def _ensure_loaded(self) -> None:
        """Load a stored experiment (once; concurrent callers wait for the one load)."""
        if self._loader is None:
            return
        with self._load_lock:
            loader = self._loader
            if loader is None:
                return
            loaded = loader()  # I/O: outside the state lock, so status() still answers meanwhile
            with self._lock:
                if self._loader is loader and self._job is None:
                    self._fill(**loaded)
                    self._update(loader=None)

    def _instance(self) -> ExperimentType:
        if self._type_instance is None:
            raise NotReady(f"Experiment {self.name!r} has no model loaded")
        return self._type_instance

    # -- inside ----------------------------------------------------------------------------------
    def _check_idle(self) -> None:
        if self.busy:
            raise Busy(f"Experiment {self.name!r} is {self._state}; stop it or wait for it first")

    def _owned_by(self, job: Job) -> bool:
        return self._job is job and not job.cancelled and self.busy

    def _state_event(self) -> Event:
        return Event("state_changed", self.name, {"status": self.status.to_dict()})

    def _update(self, **changes: Any) -> None:
        for key, value in changes.items():
            attribute = f"_{key}"
            if not hasattr(self, attribute):
                raise AttributeError(f"Experiment has no state {key!r}")
            setattr(self, attribute, value)
        self._changed.notify_all()


def _model_type_of(type_instance: ExperimentType) -> str:
    return str(type_instance.config["create_model"]["model_type"])
