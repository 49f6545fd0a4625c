"""One experiment inside the hub: its state, data, model and figures.

Read it through properties (``hub.experiments["sales"].state``); change it only through the hub,
which holds the experiment's lock for every transition and publishes the matching event.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .experiments.base import Evaluation, ExperimentType
    from .jobs import WorkerJob

STATES = ("created", "training", "ready", "failed", "stopped")
BUSY_STATES = ("created", "training")


@dataclasses.dataclass(frozen=True)
class Status:
    name: str
    experiment_type: str
    model_type: str
    state: str
    stage: str
    progress: float
    error: str | None
    run_id: str | None
    exp_id: str | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    tracking: str | None  # None, "logging", "logged", or "failed: <reason>"
    metrics: dict[str, float]
    retrain: dict[str, Any] | None  # last retrain-policy check
    watching: bool = False  # streaming mode: predicting each batch arriving on the queue

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("started_at", "ended_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Experiment:
    def __init__(self, name: str, type_name: str, impl: ExperimentType) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.name = name
        self.type_name = type_name
        self._impl = impl
        self._state = "created"
        self._stage = ""
        self._progress = 0.0
        self._error: str | None = None
        self._run_id: str | None = None
        self._exp_id: str | None = None
        self._started: dt.datetime | None = None
        self._ended: dt.datetime | None = None
        self._tracking: str | None = None
        self._train_data: pd.DataFrame | None = None  # what the current model was trained on
        self._last_data: pd.DataFrame | None = None  # what the latest job (even a failed one) used
        self._evaluation: Evaluation | None = None
        self._figures: dict[str, str] = {}
        self._eda: dict[str, str] = {}
        self._figures_stale = False
        self._predictions: pd.DataFrame | None = None  # every prediction since the last training
        self._new_rows: pd.DataFrame | None = None  # new observations kept for retraining
        self._retrain: dict[str, Any] | None = None
        self._job: WorkerJob | None = None
        self._thread: threading.Thread | None = None  # the current job's thread (training + logging)
        self._runs = 0

    # -- read-only views -------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def config(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._impl.config)

    @property
    def model_type(self) -> str:
        return self._impl.config["create_model"]["model_type"]

    @property
    def model(self) -> Any:
        """The fitted model (a Prophet model, a scikit-learn pipeline); None before training."""
        return self._impl.model

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def exp_id(self) -> str | None:
        return self._exp_id

    @property
    def status(self) -> Status:
        with self._lock:
            metrics = dict(self._evaluation.metrics) if self._evaluation else {}
            return Status(
                name=self.name, experiment_type=self.type_name, model_type=self.model_type,
                state=self._state, stage=self._stage, progress=round(self._progress, 4), error=self._error,
                run_id=self._run_id, exp_id=self._exp_id, started_at=self._started, ended_at=self._ended,
                tracking=self._tracking, metrics=metrics,
                retrain=dict(self._retrain) if self._retrain else None,
            )

    @property
    def figure_names(self) -> list[str]:
        with self._lock:
            return list(self._figures)

    @property
    def eda_names(self) -> list[str]:
        with self._lock:
            return list(self._eda)

    def __repr__(self) -> str:
        return f"<Experiment {self.name!r} {self.type_name}/{self.model_type} {self._state}>"

    # -- transitions (the hub calls these with the lock held) --------------------------------
    def _set(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self, f"_{key}", value)
        self._changed.notify_all()
