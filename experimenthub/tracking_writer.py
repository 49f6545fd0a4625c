"""Every call to the tracking store goes through one bounded gate, with retry.

However many experiments train, at most ``writers`` calls reach the store at once (SQLite allows one
writer, MLflow's connection pool 5 + 10): the others wait their turn, which is the back-pressure a
hundred trainings finishing together need. A call that fails with a *transient* store error (a
locked database, an exhausted pool, a server that is down or restarting) is retried with
exponential back-off for up to ``retry_for`` seconds, then reported; other errors are reported at
once. :meth:`health` adds what the gate sees (calls waiting, retrying, the last transient error) to
the store's own health, so an outage shows while writes wait for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import TrackingError
from .plugins.protocols import Health, RunInfo, TrackingPlugin

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY = 0.1  # seconds before the first retry; doubled each time up to MAX_DELAY
MAX_DELAY = 5.0


def default_writers(uri: str) -> int:
    """SQLite serialises writers anyway: two (one writing, one preparing); a server takes more."""
    return 2 if uri.startswith("sqlite:") else 4


class BoundedTracking:
    """A :class:`~experimenthub.plugins.protocols.TrackingPlugin` in front of another one."""

    def __init__(self, store: TrackingPlugin, writers: int | None = None, retry_for: float = 120.0) -> None:
        self.store = store
        self.uri = store.uri
        self.writers = writers or default_writers(store.uri)
        self._gate = threading.BoundedSemaphore(self.writers)
        self._retry_for = retry_for
        self._lock = threading.Lock()
        self._waiting = 0
        self._retrying = 0
        self._last_error: tuple[float, str] | None = None

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + self._retry_for
        delay = FIRST_DELAY
        while True:
            try:
                return self._through_gate(fn)
            except TrackingError as exc:
                if not exc.transient or time.monotonic() + delay > deadline:
                    raise
                self._note_retry(what, exc, delay)
            try:
                time.sleep(delay)
            finally:
                with self._lock:
                    self._retrying -= 1
            delay = min(MAX_DELAY, delay * 2)

    def _through_gate(self, fn: Callable[[], T]) -> T:
        with self._lock:
            self._waiting += 1
        self._gate.acquire()
        with self._lock:
            self._waiting -= 1
        try:
            return fn()
        finally:
            self._gate.release()

    def _note_retry(self, what: str, exc: TrackingError, delay: float) -> None:
        with self._lock:
            self._retrying += 1
            self._last_error = (time.time(), str(exc)[:500])
        log.info("tracking store busy or unreachable while trying to %s; retrying in %.1f s: %s", what, delay, exc)

    # -- the TrackingPlugin protocol ----------------------------------------------------------------
    def health(self) -> Health:
        health = self.store.health()
        with self._lock:
            writes: dict[str, Any] = {"writers": self.writers, "waiting": self._waiting, "retrying": self._retrying}
            if self._last_error is not None and time.time() - self._last_error[0] < 60:
                writes["last_transient_error"] = self._last_error[1]
        details = dict(health.get("details", {}))
        details["writes"] = writes
        return {**health, "details": details}

    def experiment_id(self, name: str, create: bool = False) -> str | None:
        return self._call("look up an experiment", lambda: self.store.experiment_id(name, create))

    def start_run(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> RunInfo:
        return self._call("start a run", lambda: self.store.start_run(experiment, run_name, tags))

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._call("log parameters", lambda: self.store.log_params(run_id, params))

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        self._call("log metrics", lambda: self.store.log_metrics(run_id, metrics))

    def log_files(self, run_id: str, files: Mapping[str, bytes | str]) -> None:
        self._call("upload artifacts", lambda: self.store.log_files(run_id, files))

    def log_directory(self, run_id: str, artifact_path: str, write: Callable[[str], None]) -> None:
        self._call("upload a directory", lambda: self.store.log_directory(run_id, artifact_path, write))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call("tag a run", lambda: self.store.set_tags(run_id, tags))

    def end_run(self, run_id: str, status: str) -> None:
        self._call("end a run", lambda: self.store.end_run(run_id, status))

    def get_run(self, run_id: str) -> RunInfo:
        return self._call("read a run", lambda: self.store.get_run(run_id))

    def runs(self, experiment: str, max_results: int = 50, finished_only: bool = False) -> list[RunInfo]:
        return self._call("list runs", lambda: self.store.runs(experiment, max_results, finished_only))

    def download(self, run_id: str, artifact_path: str, destination: str) -> str | None:
        return self._call("download an artifact", lambda: self.store.download(run_id, artifact_path, destination))

    def experiments(self) -> dict[str, dict[str, str]]:
        return self._call("list experiments", self.store.experiments)

    def set_experiment_tag(self, name: str, key: str, value: str) -> None:
        self._call("tag an experiment", lambda: self.store.set_experiment_tag(name, key, value))

    def find_runs(self, filter_string: str, max_results: int = 100_000) -> list[RunInfo]:
        return self._call("search runs", lambda: self.store.find_runs(filter_string, max_results))
