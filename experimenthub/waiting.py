"""Waiting for many experiments at once, with progress a person can follow.

``wait_many`` blocks until every experiment has settled (left ``created``/``training``; with
``tracked``, its run also written) and returns every status: a failed one does not raise, its status
says why. It wakes on the hub's events, not on a polling loop. Progress shows as a ``tqdm.auto`` bar
in a notebook (the convention users know) and as plain lines on stderr in a script.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .events import Event, Subscription
    from .experiment import Experiment
    from .status import Status

Subscribe = Callable[[Callable[["Event"], None], Iterable[str]], "Subscription"]


def wait_many(experiments: dict[str, Experiment], subscribe: Subscribe, timeout: float | None = None,
              tracked: bool = False, progress: bool | None = None) -> dict[str, Status]:
    """Every experiment's status once all have settled; TimeoutError naming those still busy."""
    changed = threading.Event()
    pending = set(experiments)
    deadline = None if timeout is None else time.monotonic() + timeout
    reporter = _reporter(len(experiments), progress)

    def on_event(event: Event) -> None:
        if event.name in pending:
            changed.set()

    subscription = subscribe(on_event, ("state_changed", "tracking", "experiment_deleted"))
    try:
        while True:
            changed.clear()
            pending -= {name for name in pending if experiments[name].settled(tracked)}
            reporter.update(len(experiments) - len(pending), _counts(experiments))
            if not pending:
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                busy = sorted(pending)
                raise TimeoutError(f"{len(busy)} experiment(s) still busy after {timeout} s: "
                                   f"{', '.join(busy[:20])}{' ...' if len(busy) > 20 else ''}")
            changed.wait(min(remaining, 1.0) if remaining is not None else 1.0)
    finally:
        subscription.close()
        reporter.close()
    return {name: experiment.status for name, experiment in experiments.items()}


def _counts(experiments: dict[str, Experiment]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for experiment in experiments.values():
        counts[experiment.state] = counts.get(experiment.state, 0) + 1
    return counts


class _Lines:
    """Plain progress lines (a script, a log): at most one every few seconds, and the last one."""

    def __init__(self, total: int, stream: TextIO, every: float = 5.0) -> None:
        self._total, self._stream, self._every = total, stream, every
        self._last = 0.0
        self._done = -1

    def update(self, done: int, counts: dict[str, int]) -> None:
        now = time.monotonic()
        if done == self._done or (done < self._total and now - self._last < self._every):
            return
        self._done, self._last = done, now
        states = ", ".join(f"{state} {count}" for state, count in sorted(counts.items()))
        print(f"experimenthub: {done}/{self._total} settled ({states})", file=self._stream, flush=True)

    def close(self) -> None:
        pass


class _Bar:
    def __init__(self, total: int) -> None:
        from tqdm.auto import tqdm

        self._bar: Any = tqdm(total=total, desc="experiments", unit="exp")
        self._done = 0

    def update(self, done: int, counts: dict[str, int]) -> None:
        if done != self._done:
            self._bar.update(done - self._done)
            self._done = done
        self._bar.set_postfix(counts, refresh=False)

    def close(self) -> None:
        self._bar.close()


class _Silent:
    def update(self, done: int, counts: dict[str, int]) -> None:
        pass

    def close(self) -> None:
        pass


def _reporter(total: int, progress: bool | None) -> _Lines | _Bar | _Silent:
    if progress is False or (progress is None and total < 2):
        return _Silent()
    if _in_notebook():
        return _Bar(total)
    return _Lines(total, sys.stderr)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"
