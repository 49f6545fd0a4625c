"""Small background threads for widget actions.

Widget callbacks run on the kernel's thread and must return at once; every hub call that may take
a while (create, load, save, predict, plots, runs) runs in a daemon thread started here. Those
threads report back only by setting widget traits (values, descriptions, options, children),
never by printing or ``with out:``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """An exception in words: the hub's own errors already say what went wrong and what to do."""
    from experimenthub.errors import ExperimentHubError

    text = str(exc).strip()
    if isinstance(exc, ExperimentHubError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Runner:
    """Runs actions in daemon threads and sends their errors to ``on_error(message)``."""

    def __init__(self, on_error: Callable[[str], None], on_start: Callable[[], None] | None = None) -> None:
        self._on_error, self._on_start = on_error, on_start
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self.closed = False

    def run(self, label: str, work: Callable[[], Any], done: Callable[[Any], None] | None = None,
            button: Any = None, failed: Callable[[BaseException], None] | None = None,
            after: Callable[[], None] | None = None) -> threading.Thread:
        """Start ``work()`` in a thread; then ``done(result)`` or the error, still in that thread.

        ``button`` is disabled meanwhile, its description showing ``label``; ``after()`` runs last
        (e.g. to enable buttons by the experiment's new state).
        """
        if self._on_start is not None:
            self._on_start()
        original = None
        if button is not None:
            original = button.description
            button.disabled = True
            button.description = label

        def target() -> None:
            try:
                result = work()
            except BaseException as exc:  # reported in words, never a traceback in the page
                log.debug("widget action %r failed", label, exc_info=True)
                if failed is not None:
                    self._safely(failed, exc)
                if not self.closed:
                    self._on_error(describe_error(exc))
            else:
                if done is not None:
                    self._safely(done, result)
            finally:
                if button is not None:
                    button.description = original
                    button.disabled = False
                if after is not None:
                    self._safely(lambda _: after(), None)
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=target, name=f"experimenthub-panel-{label}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def _safely(self, callback: Callable[[Any], None], value: Any) -> None:
        try:
            callback(value)
        except Exception as exc:
            log.debug("widget callback failed", exc_info=True)
            if not self.closed:
                self._on_error(describe_error(exc))

    def join(self, timeout: float = 5.0) -> None:
        """Wait for running actions (tests, close)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                return
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return


class Coalescer:
    """Runs ``work()`` in one background thread at a time; requests made meanwhile collapse into one
    more run (a burst of figure updates costs one or two re-fetches, never one per event)."""

    def __init__(self, name: str, work: Callable[[], None], on_error: Callable[[BaseException], None]) -> None:
        self._name, self._work, self._on_error = name, work, on_error
        self._lock = threading.Lock()
        self._dirty = False
        self._running = False
        self.closed = False

    def request(self) -> None:
        with self._lock:
            if self.closed:
                return
            self._dirty = True
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._loop, name=f"experimenthub-panel-{self._name}", daemon=True).start()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._running

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._dirty or self.closed:
                    self._running = False
                    return
                self._dirty = False
            try:
                self._work()
            except Exception as exc:
                log.debug("%s failed", self._name, exc_info=True)
                try:
                    self._on_error(exc)
                except Exception:
                    log.debug("error handler failed", exc_info=True)
