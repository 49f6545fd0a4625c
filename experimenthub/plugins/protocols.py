"""The roles a backend can play. Each role is a Protocol; one contract test suite runs against
every implementation (tests/plugins/)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

Health = dict[str, Any]
"""``{"healthy": bool, "details": {...}}``, the seed's ``/health`` entry for one plugin."""


@dataclasses.dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    experiment_name: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED
    start_time: float | None
    end_time: float | None
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]


@runtime_checkable
class TrackingPlugin(Protocol):
    """Where runs are recorded (MLflow). Every method may raise TrackingError / RunNotFound."""

    uri: str

    def health(self) -> Health: ...
    def experiment_id(self, name: str, create: bool = False) -> str | None: ...
    def start_run(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> RunInfo: ...
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None: ...
    def log_files(self, run_id: str, files: Mapping[str, bytes | str]) -> None: ...
    def log_directory(self, run_id: str, artifact_path: str, write: Callable[[str], None]) -> None: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def end_run(self, run_id: str, status: str) -> None: ...
    def get_run(self, run_id: str) -> RunInfo: ...
    def runs(self, experiment: str, max_results: int = 50) -> list[RunInfo]: ...
    def download(self, run_id: str, artifact_path: str, destination: str) -> str | None: ...


@dataclasses.dataclass
class Batch:
    """Messages taken from a queue and not yet settled: ``ack`` when the work that used them
    succeeded, ``nack`` (they go back to the queue, in order) when it did not."""

    queue: str
    bodies: list[bytes]
    _settle: Callable[[bool], None]
    settled: bool = False

    def ack(self) -> None:
        if not self.settled:
            self.settled = True
            self._settle(True)

    def nack(self) -> None:
        if not self.settled:
            self.settled = True
            self._settle(False)


@runtime_checkable
class DatastreamPlugin(Protocol):
    """Queues of JSON tables, one per experiment name."""

    def health(self) -> Health: ...
    def publish(self, queue: str, body: bytes) -> None: ...
    def drain(self, queue: str) -> Batch | None: ...
    def next_batch(self, queue: str) -> Batch | None: ...
    def purge(self, queue: str) -> int: ...
    def depth(self, queue: str) -> int: ...
    def close(self) -> None: ...
