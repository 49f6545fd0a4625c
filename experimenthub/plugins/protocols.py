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
    def runs(self, experiment: str, max_results: int = 50, finished_only: bool = False) -> list[RunInfo]: ...
    def download(self, run_id: str, artifact_path: str, destination: str) -> str | None: ...
    def experiments(self) -> dict[str, dict[str, str]]: ...
    def set_experiment_tag(self, name: str, key: str, value: str) -> None: ...
    def find_runs(self, filter_string: str, max_results: int = 100_000) -> list[RunInfo]: ...


@dataclasses.dataclass
class Batch:
    """Messages taken from a queue and not yet settled: ``ack`` when the work that used them
    succeeded, ``nack`` (they go back to the queue, in order) when it did not.

    ``reject(index, reason)`` moves one malformed message to the queue's dead-letter queue
    (``<queue>.dead``) with the reason at once; ``ack``/``nack`` then settle the others. A
    message that cannot be dead-lettered raises :class:`~experimenthub.errors.DatastreamError`
    and stays in the batch (settle it with ``nack`` then).
    """

    queue: str
    bodies: list[bytes]
    _settle: Callable[[bool], None]
    settled: bool = False
    _reject: Callable[[int, str], None] | None = None
    rejected: dict[int, str] = dataclasses.field(default_factory=dict)

    def ack(self) -> None:
        if not self.settled:
            self.settled = True
            self._settle(True)

    def nack(self) -> None:
        if not self.settled:
            self.settled = True
            self._settle(False)

    def reject(self, index: int, reason: str) -> None:
        if self.settled or index in self.rejected:
            return
        if not 0 <= index < len(self.bodies):
            raise IndexError(f"message index {index} out of range: the batch holds {len(self.bodies)}")
        if self._reject is None:
            raise NotImplementedError("this datastream cannot dead-letter messages")
        self._reject(index, str(reason))
        self.rejected[index] = str(reason)
        if len(self.rejected) == len(self.bodies):
            self.settled = True  # nothing left to ack or nack

    @property
    def pending(self) -> list[int]:
        """Indices of the messages neither rejected nor settled yet."""
        return [] if self.settled else [i for i in range(len(self.bodies)) if i not in self.rejected]


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A message rejected to a dead-letter queue, with the reason it was rejected."""

    body: bytes
    reason: str


@runtime_checkable
class Consumer(Protocol):
    """A running ``consume``: delivers each message of one queue as a one-message Batch."""

    queue: str

    @property
    def running(self) -> bool: ...
    def stop(self, timeout: float = 2.0) -> None: ...


@runtime_checkable
class DatastreamPlugin(Protocol):
    """Queues of JSON tables, one per experiment name.

    ``drain`` takes every message present at that moment, ``next_batch`` the oldest one; neither
    acknowledges: the Batch does, when the caller settles it. ``consume`` delivers messages as
    they arrive (at most ``prefetch`` unsettled at a time) to ``callback`` on the consumer's own
    thread; the callback must return at once and settle the Batch later, from any thread.
    ``dead_letters`` shows (without removing) what was rejected from a queue.
    """

    def health(self) -> Health: ...
    def publish(self, queue: str, body: bytes) -> None: ...
    def drain(self, queue: str) -> Batch | None: ...
    def next_batch(self, queue: str) -> Batch | None: ...
    def purge(self, queue: str) -> int: ...
    def depth(self, queue: str) -> int: ...
    def consume(self, queue: str, callback: Callable[[Batch], None], prefetch: int = 1) -> Consumer: ...
    def dead_letters(self, queue: str) -> list[DeadLetter]: ...
    def close(self) -> None: ...
