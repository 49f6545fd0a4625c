"""What an experiment looks like from outside at one moment: :class:`Status`.

A frozen snapshot made by the experiment under its lock (``hub.status(name)``, ``GET
/{name}/status``); the states it can hold and which of them mean that a job owns the experiment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

STATES = ("created", "training", "ready", "failed", "stopped")
BUSY_STATES = ("created", "training")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
    queue_position: int | None = None  # while queued: jobs ahead of this one (0: next to start)
    executor: str | None = None  # where the latest job runs or ran: "local", or a Dask worker's address

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("started_at", "ended_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out
