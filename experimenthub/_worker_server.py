"""The worker server: a single-threaded process that preloads the heavy libraries, then forks a
child (a worker) per request. Started by :mod:`experimenthub.jobs` as ``python -m
experimenthub._worker_server FD``; FD is a UNIX socket to the hub process.

Each request on the socket carries one file descriptor: the hub's end of a socket pair to the new
worker. The forked child becomes a process-group leader (so the hub can kill it with everything
it started), runs the jobs sent over that socket, one at a time, and exits when the hub closes
it. Children are reaped by the kernel (SIGCHLD ignored here, restored in the child so that
subprocesses such as CmdStan can be waited for). The server exits when the hub closes the socket.

Unlike ``multiprocessing``'s fork server, a child never re-imports the hub's ``__main__``: a plain
script without an ``if __name__ == "__main__"`` guard works.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
import traceback
from multiprocessing.connection import Connection


def _kill_groups(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _alive_groups(pids: set[int]) -> set[int]:
    """The children whose process group still exists (a job, or something it started, runs)."""
    alive = set()
    for pid in pids:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            continue
        alive.add(pid)
    return alive


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _error(exc: BaseException) -> tuple[str, tuple[str, str, str]]:
    return "error", (type(exc).__name__, str(exc), traceback.format_exc())


def _run_child(fd: int) -> None:
    """Run jobs sent on ``fd`` one after another until the hub closes it: a worker the hub keeps
    for its next job costs no fork, and its pages, once copied, need no copying again."""
    conn = Connection(fd)
    conn.send(("pid", os.getpid()))

    def report(kind: str, payload: object) -> None:
        conn.send((kind, payload))

    try:
        while True:
            try:
                fn, args = conn.recv()
            except EOFError:
                return  # the hub has no more jobs for this worker
            except Exception as exc:  # the job does not unpickle here (its module does not import): say why
                conn.send(_error(exc))
                continue
            try:
                result = fn(*args, report)
                conn.send(("result", result))
            except BaseException as exc:
                conn.send(_error(exc))
            del fn, args
    finally:
        conn.close()


def main(control_fd: int) -> None:
    # a stop must work while the libraries load too, whatever the starting process ignored (a Dask
    # worker's process ignores SIGTERM, and ignored signals stay ignored across exec)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    control = socket.socket(fileno=control_fd)
    # Trainings are batch work: at a lower priority (inherited by the children and their CmdStan)
    # the kernel, the widgets and the REST server stay responsive while every core is fitting.
    try:
        os.nice(10)
    except OSError:
        pass
    import experimenthub._worker_preload  # noqa: F401  (imported before any fork)

    # Objects that exist now are shared with every child; keep the collector from walking them in
    # the children (which would copy every page on write). See the gc.freeze() documentation.
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a stop is an exit: the jobs go too
    control.sendall(b"R")  # ready: libraries loaded
    children: set[int] = set()
    try:
        _serve(control, children)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # we are exiting already
        _kill_groups(_alive_groups(children))  # the hub went away: so do its jobs


def _serve(control: socket.socket, children: set[int]) -> None:
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, 16, 1)
        except (ConnectionError, OSError):
            return
        if not message:
            return  # the hub went away
        if not fds:
            continue
        children.intersection_update(_alive_groups(children))
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.setpgrp()
                _run_child(fds[0])
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.add(pid)
        os.close(fds[0])


if __name__ == "__main__":
    main(int(sys.argv[1]))
