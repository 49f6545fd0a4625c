"""The worker server: a single-threaded process that preloads the heavy libraries, then forks one
child per training job. Started by :mod:`experimenthub.jobs` as ``python -m
experimenthub._worker_server FD``; FD is a UNIX socket to the hub process.

Each request on the socket carries one file descriptor: the job's end of a socket pair. The
forked child becomes a process-group leader (so the hub can kill it with everything it started),
runs the job over that socket and exits. Children are reaped by the kernel (SIGCHLD ignored
here, restored in the child so that subprocesses such as CmdStan can be waited for). The server
exits when the hub closes the socket or dies (a crashed kernel), killing the process group of
every job still running.

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


def _run_child(fd: int) -> None:
    conn = Connection(fd)
    conn.send(("pid", os.getpid()))
    fn, args = conn.recv()

    def report(kind: str, payload: object) -> None:
        conn.send((kind, payload))

    try:
        result = fn(*args, report)
        conn.send(("result", result))
    except BaseException as exc:
        conn.send(("error", (type(exc).__name__, str(exc), traceback.format_exc())))
    finally:
        conn.close()


def main(control_fd: int) -> None:
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
    control.sendall(b"R")  # ready: libraries loaded
    children: set[int] = set()
    try:
        _serve(control, children)
    finally:
        # the hub went away (closed the socket, or died: a crashed kernel): its jobs go with it,
        # each child's whole process group (CmdStan included)
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


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
        children.difference_update([pid for pid in children if not _alive(pid)])
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setpgrp()
                _run_child(fds[0])
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])
        children.add(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


if __name__ == "__main__":
    main(int(sys.argv[1]))
