"""The Dask executor: training jobs as tasks on a Dask cluster, as stoppable as local ones.

Only the job's function, ``fn(*args, report)``, runs on a worker (see :mod:`.dask_worker`); the
MLflow run, the events, the admission queue and the write-behind logging stay in the hub. The
cluster is the user's client (``ExperimentHub(dask_client=client)``, left open on close), a
scheduler address (``dask_address``), or, with neither, a loopback cluster of this machine's
cores started for the hub and closed with it (:mod:`.dask_cluster`).

A :class:`DaskWork` submits one task; its frame travels once, as a task argument, which the
scheduler keeps so that Dask can run the task again on another worker when its worker dies (up to
``distributed.scheduler.allowed-failures`` times; after that the job fails naming the worker).
Reports come back as Dask events on the executor's topic: the subscription's handler runs on the
client's IO-loop thread, so it only puts them in the job's queue, which ``run()`` drains in the
job's thread; the future's done-callback ends the queue. ``cancel()`` returns at once: the job's
``run()`` raises JobCancelled, while a short-lived thread sets the job's cancel event (the task's
watcher kills the fit within milliseconds) and cancels the future.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distributed import Client, Event
from distributed.scheduler import KilledWorker

from . import dask_threads
from .dask_cluster import LoopbackCluster
from .dask_worker import PLUGIN_NAME, TrainingPlugin, run_training
from .errors import InvalidConfig
from .jobs import JobCancelled, JobError, Report, isolation_of
from .redact import redact_text, redact_uri

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 30.0  # seconds to reach a scheduler given by address
_DONE = object()  # the end of a job's message queue


class DaskExecutor:
    """Jobs on a Dask cluster: the given ``client``'s, the scheduler at ``address``'s, or a loopback
    cluster of ``n_workers`` single-threaded workers (default: one per core) started under ``home``."""

    name = "dask"

    def __init__(self, client: Client | None = None, address: str | None = None, home: Path | None = None,
                 n_workers: int | None = None) -> None:
        self._lock = threading.Lock()
        self._topic = f"experimenthub-{uuid.uuid4().hex}"
        self._listeners: dict[str, queue.SimpleQueue[Any]] = {}
        self._client: Client | None = client
        self._owns_client = client is None
        self._cluster: LoopbackCluster | None = None
        self._prepared = False
        self._closed = False
        self._on_slots: Callable[[int], None] | None = None
        self._address = address
        if client is not None:
            if getattr(client, "asynchronous", False):
                raise TypeError("dask_client must be a synchronous distributed.Client")
            self._slots: int | None = dask_threads.count(client) or None
        elif address:
            self._client = _connect(address)
            self._slots = dask_threads.count(self._client) or None
        else:
            home = home or Path(".experimenthub").resolve()
            self._cluster = LoopbackCluster(home / "dask" / f"cluster-{os.getpid()}", n_workers or os.cpu_count() or 1)
            self._slots = self._cluster.slots

    # -- the Executor role ---------------------------------------------------------------------
    def work(self, fn: Callable[..., Any], args: tuple[Any, ...], on_message: Report, cls: type) -> DaskWork:
        return DaskWork(self, fn, args, on_message, isolation_of(cls))

    def warm_up(self) -> None:
        """Connect (a cluster of our own: once its workers joined) and set the workers up."""
        self.client()

    def slots(self) -> int | None:
        """The cluster's worker threads (None: it had no workers yet); as last heard, once followed."""
        return self._slots

    def follow_slots(self, on_change: Callable[[int], None]) -> None:
        """From the connection on, call ``on_change(threads)`` (at least 1) whenever workers join or
        leave the cluster; on the client's IO-loop thread, so it must return at once."""
        self._on_slots = on_change

    def health(self) -> dict[str, Any]:
        details: dict[str, Any] = {"executor": "dask"}
        client = self._client
        if client is None:
            return {"healthy": False, "details": {**details, "status": "starting"}}
        scheduler = client.scheduler
        details["scheduler"] = redact_uri(str(scheduler.address)) if scheduler is not None else None
        details["status"] = client.status
        if client.status != "running" or scheduler is None:
            return {"healthy": False, "details": details}
        try:
            threads = client.sync(scheduler.ncores, callback_timeout=2.0)
        except Exception as exc:
            return {"healthy": False, "details": {**details, "error": redact_text(str(exc) or type(exc).__name__)}}
        details.update(workers=len(threads), threads=sum(threads.values()))
        return {"healthy": bool(threads), "details": details}

    def close(self) -> None:
        """Stop listening; close the client and the cluster this executor started (not a given client)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            client, prepared = self._client, self._prepared
        if client is not None and prepared:
            try:
                client.unsubscribe_topic(self._topic)
            except Exception:
                log.debug("could not unsubscribe from %s", self._topic, exc_info=True)
            if self._on_slots is not None:
                dask_threads.unfollow(client, self._slots_changed)
        if client is not None and self._owns_client:
            client.close()
        if self._cluster is not None:
            self._cluster.close()

    # -- for DaskWork ----------------------------------------------------------------------------
    @property
    def topic(self) -> str:
        return self._topic

    def client(self) -> Client:
        """The client, connected, with the workers' plugin registered and our topic subscribed."""
        with self._lock:
            if self._closed:
                raise JobError("ExecutorClosed", "the hub's Dask executor is closed")
            if self._client is None:
                assert self._cluster is not None  # no client, no address: a cluster of our own
                self._client = self._cluster.connect()
            if not self._prepared:
                self._client.register_plugin(TrainingPlugin(), name=PLUGIN_NAME)
                self._client.subscribe_topic(self._topic, self._dispatch)
                if self._on_slots is not None:
                    dask_threads.follow(self._client, self._slots_changed)
                self._prepared = True
            return self._client

    def _slots_changed(self, threads: int) -> None:
        on_slots = self._on_slots
        if on_slots is not None:
            self._slots = threads or None
            on_slots(max(1, threads))  # with no worker, one job waits for the next to join

    def listen(self, key: str, messages: queue.SimpleQueue[Any]) -> None:
        self._listeners[key] = messages

    def unlisten(self, key: str) -> None:
        self._listeners.pop(key, None)

    def _dispatch(self, event: tuple[float, Any]) -> None:
        """On the client's IO-loop thread: hand the message to its job, nothing more."""
        _, message = event
        try:
            key, kind, payload = message
        except (TypeError, ValueError):
            return
        messages = self._listeners.get(key)
        if messages is not None:
            messages.put((kind, payload))


class DaskWork:
    """One job as one Dask task (the :class:`~experimenthub.executor.WorkItem` role)."""

    def __init__(self, executor: DaskExecutor, fn: Callable[..., Any], args: tuple[Any, ...], on_message: Report,
                 isolation: str) -> None:
        self._executor = executor
        self._fn, self._args, self._on_message, self._isolation = fn, args, on_message, isolation
        self._key = f"experimenthub-train-{uuid.uuid4().hex}"
        self._cancel_name = f"{self._key}-cancel"
        self._messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._cancelled = False
        self._future: Any = None
        self._where: str | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def where(self) -> str | None:
        """The address of the Dask worker running the job (the latest, when Dask ran it again)."""
        return self._where

    def run(self) -> Any:
        """Submit the task and relay its reports until it ends; its result, or JobCancelled / JobError."""
        if self._cancelled:
            raise JobCancelled()
        client = self._executor.client()
        self._executor.listen(self._key, self._messages)
        try:
            with self._lock:
                if self._cancelled:
                    raise JobCancelled()
                self._future = client.submit(run_training, self._fn, self._args, self._isolation,
                                             self._executor.topic, self._cancel_name, key=self._key, pure=False)
            self._future.add_done_callback(lambda _: self._messages.put(_DONE))
            self._relay()
            return self._outcome()
        finally:
            self._executor.unlisten(self._key)
            if self._future is not None and not self._cancelled:
                self._future.release()  # the scheduler may forget the task and its result

    def cancel(self) -> None:
        """Stop the job: ``run()`` raises JobCancelled at once; the task is killed on its worker."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            future, started = self._future, self._where is not None
        self._messages.put(_DONE)
        if future is not None and not future.done():  # an ended task has nothing to stop
            threading.Thread(target=self._stop_remote, args=(future, started),
                             name=f"experimenthub-dask-cancel-{self._key}", daemon=True).start()

    def _stop_remote(self, future: Any, started: bool) -> None:
        try:
            if started:  # its watcher waits on this event; a task not started yet just goes
                Event(self._cancel_name, client=future.client).set()
            future.cancel()
        except Exception:  # the client is closing: the scheduler cancels its tasks anyway
            log.debug("could not cancel Dask task %s", self._key, exc_info=True)

    def _relay(self) -> None:
        while True:
            item = self._messages.get()
            if item is _DONE:
                return
            kind, payload = item
            if kind == "started":
                self._where = str(payload.get("address")) if isinstance(payload, dict) else None
            elif not self._cancelled:
                self._on_message(kind, payload)

    def _outcome(self) -> Any:
        if self._cancelled:
            raise JobCancelled()
        future = self._future
        status = future.status
        if status == "finished":
            tag, value = future.result()
            if tag == "result":
                return value
            if tag == "error":
                raise JobError(*value)
            raise JobError("Cancelled", f"the training was stopped on the Dask worker {self._where}")
        if status == "cancelled":
            raise JobError("DaskCancelled", f"Dask cancelled the training: {_reason(future)}")
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            worker = getattr(getattr(exc, "last_worker", None), "address", None) or self._where
            tries = getattr(exc, "allowed_failures", 0) + 1
            raise JobError("WorkerDied", f"the Dask worker {worker} died during the training (Dask gave up after "
                                         f"{tries} worker{'s' if tries > 1 else ''} running it died; "
                                         f"see distributed.scheduler.allowed-failures)")
        raise JobError(type(exc).__name__, f"{exc} (on the Dask worker {self._where})")


def _connect(address: str) -> Client:
    try:
        return Client(address, set_as_default=False, timeout=_CONNECT_TIMEOUT)
    except Exception as exc:
        raise InvalidConfig(f"cannot reach the Dask scheduler at {redact_uri(address)}: "
                            f"{redact_text(str(exc) or type(exc).__name__)}", "dask_address") from None


def _reason(future: Any) -> str:
    try:
        future.result(timeout=0)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return "no reason given"
