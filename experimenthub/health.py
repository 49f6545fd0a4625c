"""The hub's health, cheap to ask for however often it is asked, and never slow.

Probing the plugins costs I/O (an MLflow query, a broker round trip) and can take seconds when a
store is busy or down. A probe younger than ``max_age`` seconds is reused, and concurrent callers
share one probe; an older one is refreshed in the background, and callers wait for the new probe at
most ``patience`` seconds before they get the last answer (only the very first call waits for its
probe however long it takes). So a dashboard polling from many clients costs one probe per
``max_age``, a slow store never makes ``/health`` slow, and a change shows as soon as a probe sees it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any


class HealthCheck:
    def __init__(self, probe: Callable[[], dict[str, Any]], max_age: float = 1.0, patience: float = 0.5) -> None:
        self._probe = probe
        self._max_age = max_age
        self._patience = patience
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, Any]] | None = None
        self._running: threading.Event | None = None  # set when the probe under way ends
        self._error: Exception | None = None

    def get(self, max_age: float | None = None) -> dict[str, Any]:
        """The latest answer, refreshed if older than ``max_age`` (0: wait for a new probe)."""
        limit = self._max_age if max_age is None else max_age
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last[0] < limit:
                return copy.deepcopy(last[1])
            done = self._running
            if done is None:
                done = self._running = threading.Event()
                threading.Thread(target=self._run, args=(done,), name="experimenthub-health", daemon=True).start()
        done.wait(None if last is None or limit <= 0 else self._patience)
        with self._lock:
            current = self._last or last
        if current is None:
            raise RuntimeError(f"the health probe failed: {self._error!r}")
        return copy.deepcopy(current[1])

    def _run(self, done: threading.Event) -> None:
        try:
            result = self._probe()
            with self._lock:
                self._last = (time.monotonic(), result)
        except Exception as exc:  # the plugins' health never raises; a bug here still must not hang callers
            self._error = exc
        finally:
            with self._lock:
                self._running = None
            done.set()
