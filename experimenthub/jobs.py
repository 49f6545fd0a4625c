"""Running a function where it can really be stopped.

``WorkerJob`` runs ``fn(*args, report)`` in a worker: a child of the worker server
(:mod:`experimenthub._worker_server`), which has pandas, Prophet and scikit-learn preloaded, so a
worker costs a fork, not an import. A worker leads its own process group, so
:meth:`WorkerJob.cancel` kills it *and* whatever it started (Prophet's CmdStan optimiser) at once;
a fit has no cancel API to wait for. ``report(kind, payload)`` messages stream back to
``on_message`` in the calling thread.

A worker whose job succeeded is kept for the next one (up to :func:`keep_workers` idle, each for
``IDLE_SECONDS`` and ``MAX_JOBS_PER_WORKER`` jobs), as ``concurrent.futures`` keeps its processes: a
fork, the copy-on-write faults of a fresh child and its exit cost about as much CPU as a small
Prophet fit. A job that was stopped, failed or lost its worker never hands its worker on.

Functions a worker cannot import (a class defined in a notebook) run in the calling thread
instead (``isolation="thread"``); they are stopped cooperatively at their next ``report`` call.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

Report = Callable[[str, Any], None]
_START_TIMEOUT = 120.0  # seconds for the server to import its libraries on a cold machine
IDLE_SECONDS = 5.0  # a kept worker with no job for this long exits (a burst's jobs follow in ms)
MAX_JOBS_PER_WORKER = 100  # then a fresh one: whatever jobs leave behind in a worker stays bounded


class JobCancelled(Exception):
    """The job was stopped on request."""


class JobError(RuntimeError):
    """The job's function raised; ``kind`` is the exception class name, ``trace`` its traceback."""

    def __init__(self, kind: str, message: str, trace: str = "") -> None:
        self.kind, self.trace = kind, trace
        super().__init__(f"{kind}: {message}" if message else kind)


class _Worker:
    """A child of the worker server, reached over ``conn``; it runs the jobs sent there one by one."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self.conn, self.pid = conn, pid
        self.jobs = 0
        self.expiry: threading.Timer | None = None


class _WorkerServer:
    """The process-wide worker server, started on first use and restarted if it died, with the
    workers kept between jobs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._idle_lock = threading.Lock()
        self._idle: list[_Worker] = []
        self.keep_idle = 1  # raised by keep_workers to the trainings that may run at once

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "experimenthub._worker_server", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        ours.settimeout(_START_TIMEOUT)
        try:
            if ours.recv(1) != b"R":
                raise OSError("worker server exited while starting")
        except OSError as exc:
            self._process.kill()
            raise JobError("WorkerServerFailed", f"the training worker server did not start: {exc}") from exc
        ours.settimeout(None)
        self._control = ours

    def ensure_started(self) -> None:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()

    def fork(self) -> Connection:
        """A connection to a new child of the server."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                for attempt in (1, 2):
                    if self._process is None or self._process.poll() is not None:
                        self._start()
                    assert self._control is not None  # a running server has its control socket
                    try:
                        socket.send_fds(self._control, [b"J"], [theirs.fileno()])
                        break
                    except OSError:
                        if attempt == 2:
                            raise
                        self._process = None  # died: start a new one and try once more
        finally:
            theirs.close()
        return Connection(ours.detach())

    def take(self) -> _Worker:
        """A worker for one job: a kept one (the latest kept, its caches the warmest), else a new one."""
        while True:
            with self._idle_lock:
                if not self._idle:
                    break
                worker = self._idle.pop()
            if worker.expiry is not None:
                worker.expiry.cancel()
            if not worker.conn.poll():  # nothing to read while idle: alive (a dead one reads as EOF)
                return worker
            _discard(worker)
        conn = self.fork()
        try:
            kind, pid = conn.recv()
        except (EOFError, OSError) as exc:
            conn.close()
            raise JobError("WorkerDied", "the training worker exited before it started") from exc
        return _Worker(conn, pid)

    def give_back(self, worker: _Worker) -> None:
        """Keep a worker whose job succeeded for the next job, or let it exit."""
        worker.jobs += 1
        with self._idle_lock:
            if worker.jobs < MAX_JOBS_PER_WORKER and len(self._idle) < self.keep_idle:
                worker.expiry = threading.Timer(IDLE_SECONDS, self._expire, args=(worker,))
                worker.expiry.daemon = True
                worker.expiry.start()
                self._idle.append(worker)
                return
        worker.conn.close()  # it exits once it reads the end of its socket

    def _expire(self, worker: _Worker) -> None:
        with self._idle_lock:
            if worker not in self._idle:
                return  # taken meanwhile
            self._idle.remove(worker)
        worker.conn.close()

    def _drop_idle(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            _discard(worker)

    def stop(self) -> None:
        self._drop_idle()
        starting = self._process  # a server still loading its libraries holds the lock: end it first
        if starting is not None and starting.poll() is None:
            starting.terminate()
        with self._lock:
            if self._control is not None:
                self._control.close()
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
            self._process = self._control = None


def _discard(worker: _Worker) -> None:
    if worker.expiry is not None:
        worker.expiry.cancel()
    _kill_group(worker.pid)
    worker.conn.close()


_server = _WorkerServer()
atexit.register(_server.stop)


def warm_up() -> None:
    """Start the worker server and let it import its libraries (call from a background thread)."""
    _server.ensure_started()


def keep_workers(count: int) -> None:
    """Keep up to ``count`` idle workers between jobs (at least; hubs in one process share them)."""
    _server.keep_idle = max(_server.keep_idle, count)


def stop_worker_server() -> None:
    """Stop this process's worker server, killing the jobs it runs (a Dask worker closing)."""
    _server.stop()


class WorkerJob:
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], on_message: Report,
                 isolation: str = "process") -> None:
        self._fn, self._args, self._on_message = fn, args, on_message
        self._isolation = isolation
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def where(self) -> str | None:
        return "local"

    def run(self) -> Any:
        """Run to completion in the calling thread; raise JobCancelled or JobError."""
        if self._cancelled.is_set():
            raise JobCancelled()
        if self._isolation == "thread":
            return self._run_in_thread()
        return self._run_in_process()

    def cancel(self) -> None:
        """Stop the job now. Safe from any thread, idempotent."""
        self._cancelled.set()
        with self._lock:
            if self._pid is not None:
                _kill_group(self._pid)

    # -- process isolation -----------------------------------------------------------------
    def _run_in_process(self) -> Any:
        worker = _server.take()
        succeeded = False
        try:
            while True:
                with self._lock:
                    self._pid = worker.pid
                    if self._cancelled.is_set():
                        raise JobCancelled()
                try:
                    worker.conn.send((self._fn, self._args))
                    break
                except OSError as exc:  # the worker is gone before it got the job
                    if self._cancelled.is_set():
                        raise JobCancelled() from exc
                    if worker.jobs == 0:
                        raise JobError("WorkerDied", "the training worker exited before it started") from exc
                    _discard(worker)  # a kept one that died while idle: the job goes to a new one
                    worker = _server.take()
            try:
                result = self._pump(worker.conn)
            except (EOFError, OSError) as exc:
                if self._cancelled.is_set():
                    raise JobCancelled() from exc
                raise JobError("WorkerDied", "the training worker exited unexpectedly") from exc
            succeeded = True
            return result
        finally:
            with self._lock:
                self._pid = None
                keep = succeeded and not self._cancelled.is_set()
            if keep:
                _server.give_back(worker)
            else:
                _discard(worker)  # never leave a worker (or its CmdStan) behind

    def _pump(self, conn: Connection) -> Any:
        while True:
            wait([conn])
            kind, payload = conn.recv()
            if kind == "result":
                return payload
            if kind == "error":
                raise JobError(*payload)
            self._on_message(kind, payload)

    # -- thread isolation ------------------------------------------------------------------
    def _run_in_thread(self) -> Any:
        def report(kind: str, payload: Any) -> None:
            if self._cancelled.is_set():
                raise JobCancelled()
            self._on_message(kind, payload)

        try:
            result = self._fn(*self._args, report)
        except JobCancelled:
            raise
        except Exception as exc:
            raise JobError(type(exc).__name__, str(exc), traceback.format_exc()) from exc
        if self._cancelled.is_set():
            raise JobCancelled()
        return result


def isolation_of(cls: type) -> str:
    """Worker processes import the type by module; types living in ``__main__`` (a notebook) cannot
    be imported there, so they run in a thread and stop cooperatively."""
    if getattr(cls, "isolation", "process") == "thread" or cls.__module__ in ("__main__", "__mp_main__"):
        return "thread"
    return "process"


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group, then the leader in case it had no group yet
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
