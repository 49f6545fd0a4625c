"""Small background threads for widget actions.

Widget callbacks run on the kernel's thread and must return at once; every hub call that may take
a while (create, load, save, predict, plots, runs) runs in a daemon thread started here. Those
threads report back only by setting widget traits (values, descriptions, options, children),
never by printing or ``with out:``.
"""

from __future__ import annotations

import logging
import threading
import time
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
        self.closed = False  # set by close(): results of actions still running are dropped

    def close(self) -> None:
        """The panel is closing: actions still running report nothing (their widgets are gone)."""
        self.closed = True

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


class Throttle:
    """Runs ``work()`` in one background thread, with a pause after each run.

    ``request()`` only sets a flag (any thread, returns at once). The first request after a quiet
    spell runs ``work`` at once; requests arriving while it runs or during the pause after it
    collapse into one more run when the pause ends, so a burst of a thousand hub events costs a
    handful of runs and the last state is always drawn. The pause grows with what a run costs:
    ``cost_ratio`` times its duration, kept between ``interval`` and ``max_interval`` seconds (a
    cheap run may come again soon; a costly one at most every ``max_interval``), so drawing never
    takes more than about ``1 / cost_ratio`` of the time. The thread ends after a quiet pause;
    ``close()`` ends it sooner and refuses further requests.
    """

    def __init__(self, name: str, work: Callable[[], None], on_error: Callable[[BaseException], None],
                 interval: float = 0.1, max_interval: float = 1.0, cost_ratio: float = 25.0) -> None:
        self._name, self._work, self._on_error = name, work, on_error
        self.interval, self.max_interval, self.cost_ratio = float(interval), float(max_interval), float(cost_ratio)
        self._lock = threading.Lock()
        self._dirty = False
        self._running = False
        self._closing = threading.Event()
        self.runs = 0  # how many times work ran (benchmarks count renders with it)
        self.last_pause = 0.0

    def request(self) -> None:
        with self._lock:
            if self._closing.is_set():
                return
            self._dirty = True
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._loop, name=f"experimenthub-panel-{self._name}", daemon=True).start()

    @property
    def pending(self) -> bool:
        """A run is under way, due, or in its pause (tests and benchmarks wait for it to settle)."""
        with self._lock:
            return self._running

    def close(self) -> None:
        with self._lock:
            self._closing.set()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._dirty or self._closing.is_set():
                    self._running = False
                    return
                self._dirty = False
            start = time.perf_counter()
            try:
                self.runs += 1
                self._work()
            except Exception as exc:
                log.debug("%s failed", self._name, exc_info=True)
                try:
                    self._on_error(exc)
                except Exception:
                    log.debug("error handler failed", exc_info=True)
            cost = time.perf_counter() - start
            self.last_pause = min(self.max_interval, max(self.interval, self.cost_ratio * cost))
            if self._closing.wait(self.last_pause):
                with self._lock:
                    self._running = False
                return


class Coalescer(Throttle):
    """A :class:`Throttle` without a pause: ``work()`` runs in one background thread at a time, and
    requests made meanwhile collapse into one more run (a burst of figure updates costs one or two
    re-fetches, never one per event)."""

    def __init__(self, name: str, work: Callable[[], None], on_error: Callable[[BaseException], None]) -> None:
        super().__init__(name, work, on_error, interval=0.0, max_interval=0.0, cost_ratio=0.0)

    @property
    def busy(self) -> bool:
        """A run is under way or due (tests and the widgets' ``busy`` wait for it)."""
        return self.pending


class WhenShown:
    """Passes requests on to ``worker`` (a :class:`Coalescer` or :class:`Throttle`) only while its view
    is shown; a request made while hidden is kept, and one run follows when the view is shown again.
    Tabs that read much (the leaderboard of every experiment, an experiment restored from MLflow
    and loaded on first use) cost nothing while nobody looks at them."""

    def __init__(self, worker: Coalescer | Throttle, stale: bool = False) -> None:
        self._worker = worker
        self._lock = threading.Lock()
        self._shown = False
        self._stale = stale  # True: run when first shown, requested or not

    @property
    def shown(self) -> bool:
        return self._shown

    def request(self) -> None:
        with self._lock:
            if not self._shown:
                self._stale = True
                return
        self._worker.request()

    def show(self, shown: bool) -> None:
        with self._lock:
            self._shown = shown
            due = shown and self._stale
            if due:
                self._stale = False
        if due:
            self._worker.request()
