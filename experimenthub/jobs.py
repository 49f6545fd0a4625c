"""Running a function where it can really be stopped.

``WorkerJob`` runs ``fn(*args, report)`` in a child of the worker server
(:mod:`experimenthub._worker_server`), which has pandas, Prophet and scikit-learn preloaded: a
job costs a fork, not an import. The child leads its own process group, so :meth:`WorkerJob.cancel`
kills it *and* whatever it started (Prophet's CmdStan optimiser) at once; a fit has no cancel API
to wait for. ``report(kind, payload)`` messages stream back to ``on_message`` in the calling thread.

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


class JobCancelled(Exception):
    """The job was stopped on request."""


class JobError(RuntimeError):
    """The job's function raised; ``kind`` is the exception class name, ``trace`` its traceback."""

    def __init__(self, kind: str, message: str, trace: str = "") -> None:
        self.kind, self.trace = kind, trace
        super().__init__(f"{kind}: {message}" if message else kind)


class _WorkerServer:
    """The process-wide worker server, started on first use and restarted if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

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

    def stop(self) -> None:
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


_server = _WorkerServer()
atexit.register(_server.stop)


def warm_up() -> None:
    """Start the worker server and let it import its libraries (call from a background thread)."""
    _server.ensure_started()


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
        conn = _server.fork()
        try:
            kind, pid = conn.recv()
            with self._lock:
                self._pid = pid
                if self._cancelled.is_set():
                    _kill_group(pid)
                    raise JobCancelled()
            try:
                conn.send((self._fn, self._args))
                return self._pump(conn)
            except (EOFError, OSError) as exc:
                if self._cancelled.is_set():
                    raise JobCancelled() from exc
                raise JobError("WorkerDied", "the training worker exited unexpectedly") from exc
        finally:
            with self._lock:
                if self._pid is not None:
                    _kill_group(self._pid)  # never leave a worker (or its CmdStan) behind
                self._pid = None
            conn.close()

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
