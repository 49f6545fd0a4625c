"""Streaming mode: ``hub.watch(name)`` predicts every batch that arrives on the experiment's queue.

Per watched experiment there is a consumer (the datastream's ``consume``: for RabbitMQ a thread
with its own connection, ``basic_qos(prefetch)`` and ``basic_consume``) and a worker thread. The
consumer hands each message to the worker, which runs it through ``hub.predict(name, frame)``
(predictions, figures and the retrain policy, exactly as a cell calling predict) and settles it:

* predicted: acknowledged (the ack goes out on the consumer's own connection thread);
* malformed (not JSON, not a table, columns the model cannot use): rejected to the dead-letter
  queue with the reason;
* the experiment is busy (training, e.g. after the retrain policy fired) or has no model yet:
  requeued after a short delay, so it is predicted once the experiment is ready;
* any other failure: requeued after the delay, and dead-lettered after ``MAX_ATTEMPTS``.

With one message in flight (prefetch 1, the default) messages are predicted in queue order,
requeues included. A larger prefetch keeps more messages at hand (faster transport) and keeps the
order too, except around a requeue: messages delivered behind a requeued one may overtake it.
"""

from __future__ import annotations

import hashlib
import logging
import queue as queue_module
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .errors import Busy, DataError, DatastreamError, ExperimentNotFound, NotReady
from .events import Event
from .tables import to_frame

if TYPE_CHECKING:
    import pandas as pd

    from .plugins.protocols import Batch, DatastreamPlugin
    from .status import Status

log = logging.getLogger(__name__)

class StreamingHost(Protocol):
    """What streaming needs of the hub: its datastream, predict, and whether an experiment exists."""

    @property
    def datastream(self) -> DatastreamPlugin: ...

    def predict(self, name: str, data: Any = None) -> pd.DataFrame: ...

    def status(self, name: str) -> Status:
        """ExperimentNotFound for an unknown name."""


RETRY_DELAY = 0.5  # seconds before a message that met a busy experiment goes back to the queue
MAX_ATTEMPTS = 3  # unexpected predict failures of one message before it is dead-lettered


class Watcher:
    """Consumes one experiment's queue and predicts each message; ``stop()`` returns within ~2 s."""

    def __init__(self, host: StreamingHost, name: str, on_gone: Callable[[Watcher], None], prefetch: int = 1,
                 retry_delay: float = RETRY_DELAY) -> None:
        self.name = name
        self._host = host
        self._on_gone = on_gone
        self._prefetch = max(1, int(prefetch))
        self._retry_delay = retry_delay
        self._inbox: queue_module.Queue[Batch] = queue_module.Queue()
        self._stopping = threading.Event()
        self._failures: dict[str, int] = {}
        self.predicted = 0
        self.rejected = 0
        self.requeued = 0
        self.last_error: str | None = None
        self._worker = threading.Thread(target=self._work, name=f"experimenthub-watch-{name}", daemon=True)
        self._consumer: Any = None

    def start(self) -> None:
        consume = getattr(self._host.datastream, "consume", None)
        if consume is None:
            raise DatastreamError(f"the datastream {type(self._host.datastream).__name__} cannot consume "
                                  f"continuously (it has no consume method); watch needs one")
        self._worker.start()
        try:
            self._consumer = consume(self.name, self._inbox.put, prefetch=self._prefetch)
        except Exception:
            self._stopping.set()
            raise

    @property
    def alive(self) -> bool:
        return not self._stopping.is_set() and self._worker.is_alive()

    def stop(self, timeout: float = 2.0) -> None:
        """Finish the batch being predicted (its ack goes out), stop consuming; unsettled messages
        go back to the queue."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(max(0.0, deadline - time.monotonic() - 0.6))
        if self._consumer is not None:
            self._consumer.stop(max(0.1, deadline - time.monotonic()))
        while True:  # delivered but never started: back to the queue
            try:
                self._inbox.get_nowait().nack()
            except queue_module.Empty:
                break

    def status(self) -> dict[str, Any]:
        return {"watching": self.alive, "predicted": self.predicted, "rejected": self.rejected,
                "requeued": self.requeued, "last_error": self.last_error}

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = self._inbox.get(timeout=0.1)
            except queue_module.Empty:
                continue
            if self._stopping.is_set():
                batch.nack()
                break
            try:
                self._handle(batch)
            except Exception as exc:  # never let the worker die with a message in hand
                log.exception("watching %r: handling a message failed", self.name)
                self.last_error = f"{type(exc).__name__}: {exc}"
                batch.nack()

    def _handle(self, batch: Batch) -> None:
        index = batch.pending[0] if batch.pending else None
        if index is None:
            return
        try:
            frame = to_frame(batch.bodies[index], f"message of queue {self.name!r}")
            if len(frame) == 0:
                raise DataError(f"message of queue {self.name!r} is an empty table (0 rows)")
        except DataError as exc:
            self._reject(batch, index, str(exc))
            return
        try:
            self._host.predict(self.name, frame)
        except (Busy, NotReady) as exc:
            self.last_error = str(exc)
            self._requeue(batch)
        except ExperimentNotFound:
            batch.nack()
            log.warning("watching %r: the experiment was deleted; watching stops", self.name)
            threading.Thread(target=self._on_gone, args=(self,), daemon=True).start()
            self._stopping.set()
        except DataError as exc:
            self._reject(batch, index, str(exc))
        except Exception as exc:
            key = hashlib.sha1(batch.bodies[index]).hexdigest()
            attempts = self._failures.get(key, 0) + 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if attempts >= MAX_ATTEMPTS:
                self._failures.pop(key, None)
                self._reject(batch, index, f"predict failed {attempts} times: {self.last_error}")
            else:
                self._failures[key] = attempts
                self._requeue(batch)
        else:
            batch.ack()
            self.predicted += 1
            if self._failures:  # it failed before and made it now
                self._failures.pop(hashlib.sha1(batch.bodies[index]).hexdigest(), None)

    def _requeue(self, batch: Batch) -> None:
        self._stopping.wait(self._retry_delay)
        batch.nack()
        self.requeued += 1

    def _reject(self, batch: Batch, index: int, reason: str) -> None:
        try:
            batch.reject(index, reason)
        except DatastreamError as exc:
            log.warning("watching %r: could not dead-letter a malformed message (%s); it goes back", self.name, exc)
            self.last_error = str(exc)
            self._requeue(batch)
            return
        self.rejected += 1
        self.last_error = reason


class Streaming:
    """The hub's watchers, one per experiment name."""

    def __init__(self, host: StreamingHost, publish: Callable[[list[Event]], None]) -> None:
        self._host = host
        self._publish = publish
        self._lock = threading.Lock()
        self._watchers: dict[str, Watcher] = {}

    def watch(self, name: str, prefetch: int = 1) -> bool:
        """Start watching; False if ``name`` is watched already."""
        self._host.status(name)  # ExperimentNotFound for an unknown name
        with self._lock:  # held while starting: concurrent watch() calls start one watcher, not several
            current = self._watchers.get(name)
            if current is not None and current.alive:
                return False
            if current is not None:  # a dead watcher: make sure its consumer is gone before replacing it
                current.stop(0.5)
            watcher = self._watchers[name] = Watcher(self._host, name, self.forget, prefetch)
            try:
                watcher.start()
            except Exception:
                del self._watchers[name]
                raise
        self._publish([Event("state_changed", name, {"watching": True})])
        return True

    def forget(self, watcher: Watcher) -> None:
        """A watcher whose experiment went away stops itself; only that watcher is removed."""
        with self._lock:
            if self._watchers.get(watcher.name) is watcher:
                del self._watchers[watcher.name]
        watcher.stop(2.0)

    def unwatch(self, name: str, timeout: float = 2.0) -> bool:
        """Stop watching (within ``timeout`` s); False if ``name`` was not watched."""
        with self._lock:
            watcher = self._watchers.pop(name, None)
        if watcher is None:
            return False
        watcher.stop(timeout)
        self._publish([Event("state_changed", name, {"watching": False})])
        return True

    def watching(self, name: str) -> bool:
        with self._lock:
            watcher = self._watchers.get(name)
        return watcher is not None and watcher.alive

    def status(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            watcher = self._watchers.get(name)
        return None if watcher is None else watcher.status()

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            names = list(self._watchers)
        threads = [threading.Thread(target=self.unwatch, args=(name, timeout), daemon=True) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 1.0)
