"""A Dask cluster on this machine, started the way users start one: the ``dask scheduler`` and
``dask worker`` command lines as subprocesses, bound to loopback.

Used by the Dask executor when it is given no scheduler address. Unlike ``LocalCluster``, whose
workers are ``multiprocessing`` spawns that import the caller's ``__main__`` again, nothing here
runs the caller's script twice: a plain script without an ``if __name__ == "__main__"`` guard works.
Each process writes its log to a file of the cluster's directory (never to a pipe nobody reads,
which stalls a chatty scheduler once the pipe is full).

The cluster lives as long as the process that started it: :meth:`LoopbackCluster.close` stops it,
and should that process die without closing it (a kernel killed), the scheduler notices that its
lifeline, a pipe whose other end only the starting process holds, closed, and shuts the cluster
down (this module is the scheduler's ``--preload``: :func:`dask_setup`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client, Scheduler

_LIFELINE_VAR = "EXPERIMENTHUB_DASK_LIFELINE_FD"
_START_TIMEOUT = 120.0  # seconds for the scheduler and workers to start on a busy machine
_STOP_TIMEOUT = 15.0


class ClusterFailed(RuntimeError):
    """The cluster did not start; the message has the end of the failing process's log."""


class LoopbackCluster:
    """``n_workers`` workers of ``threads`` threads each and their scheduler, on 127.0.0.1.

    The processes start on construction (it returns at once); :meth:`connect` waits for them."""

    def __init__(self, directory: Path, n_workers: int, threads: int = 1) -> None:
        self.directory = directory
        self.n_workers, self.threads = n_workers, threads
        directory.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = directory / "scheduler.json"
        self.scheduler_file.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # the hub's imports
        dask = [sys.executable, "-m", "dask"]
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        lifeline, self._lifeline = os.pipe()  # we keep the write end; EOF on the read end = we are gone
        try:
            self._start("scheduler", [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(self.scheduler_file),
                                      "--preload", __name__],
                        {**env, _LIFELINE_VAR: str(lifeline)}, (lifeline,))
        finally:
            os.close(lifeline)
        for index in range(n_workers):
            self._start(f"worker-{index}", [*dask, "worker", "--scheduler-file", str(self.scheduler_file),
                                            "--host", "127.0.0.1", "--nthreads", str(threads),
                                            "--name", f"experimenthub-{index}", "--no-dashboard",
                                            "--local-directory", str(directory / "work"),
                                            "--death-timeout", "60"], env, ())

    def _start(self, name: str, command: list[str], env: dict[str, str], fds: tuple[int, ...]) -> None:
        with open(self.directory / f"{name}.log", "wb") as log:
            process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, pass_fds=fds, start_new_session=True)
        self._processes.append((name, process))

    @property
    def slots(self) -> int:
        return self.n_workers * self.threads

    def connect(self, timeout: float = _START_TIMEOUT) -> Client:
        """A client of the cluster (not the default client of this process) once every worker joined."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        while not self.scheduler_file.exists():
            self._check_running()
            if time.monotonic() > deadline:
                raise ClusterFailed(f"the Dask scheduler did not start within {timeout:.0f} s; "
                                    f"see {self.directory / 'scheduler.log'}")
            time.sleep(0.05)
        client = Client(scheduler_file=str(self.scheduler_file), set_as_default=False,
                        timeout=max(1.0, deadline - time.monotonic()))
        try:
            client.wait_for_workers(self.n_workers, timeout=max(1.0, deadline - time.monotonic()))
        except Exception as exc:
            client.close()
            self._check_running()
            raise ClusterFailed(f"the Dask workers did not join within {timeout:.0f} s; "
                                f"see the logs in {self.directory}") from exc
        return client

    def _check_running(self) -> None:
        for name, process in self._processes:
            if process.poll() is not None:
                tail = (self.directory / f"{name}.log").read_text(errors="replace")[-2000:]
                raise ClusterFailed(f"the Dask {name} exited with code {process.returncode}:\n{tail}")

    def pids(self) -> list[int]:
        return [process.pid for _, process in self._processes]

    def close(self) -> None:
        """Stop every process (workers first, so that they close with their jobs), then wait."""
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
        for _, process in reversed(self._processes):  # the workers, then the scheduler
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        for _, process in self._processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        self.scheduler_file.unlink(missing_ok=True)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def dask_setup(scheduler: Scheduler) -> None:
    """The scheduler's preload: close the cluster (the scheduler closes its workers) once the
    process that started it is gone, however it went."""
    fd = os.environ.get(_LIFELINE_VAR)
    if not fd:
        return
    lifeline = int(fd)
    loop = asyncio.get_running_loop()

    def starting_process_gone() -> None:
        try:
            if os.read(lifeline, 1):
                return  # nothing is ever written; only EOF matters
        except BlockingIOError:
            return
        except OSError:
            pass
        loop.remove_reader(lifeline)
        os.close(lifeline)
        asyncio.ensure_future(scheduler.close(reason="the process that started this cluster exited"))

    os.set_blocking(lifeline, False)
    loop.add_reader(lifeline, starting_process_gone)
