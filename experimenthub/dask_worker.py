"""What runs on a Dask worker: the training task and the worker plugin that makes it stoppable.

Dask cannot interrupt a running task, and forking a multi-threaded Dask worker is unsafe. So the
task (:func:`run_training`) runs the hub's ``fn(*args, report)`` as a local
:class:`~experimenthub.jobs.WorkerJob`: in a child process group of this worker's own
single-threaded worker server (started by :class:`TrainingPlugin` when the worker starts), or,
for types the worker cannot import for a forked child (classes from the hub's ``__main__``), in
the task's thread, stopped cooperatively at its next report. The job is killed, CmdStan included,
when

* the hub sets the job's cancel signal (a :class:`distributed.Event`, watched by a thread of the
  task: a stop takes milliseconds),
* the task itself is cancelled on this worker (the hub released its future or went away: the
  plugin sees the transition at once, the watcher checks it too when no plugin is registered),
* the worker closes (the plugin's teardown; a job stopped this way asks Dask to run it elsewhere).

A worker killed outright runs no teardown: its worker server sees its control socket close and
kills its children itself.

Reports travel as Dask events, ``worker.log_event(topic, [key, kind, payload])``; the first says
which worker runs the job. Only small messages go that way (the scheduler keeps the last ones of
every topic): larger ones, such as EDA figures sent ahead of the result, come with the result.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import msgpack  # type: ignore[import-untyped]  # (distributed's own dependency)
from distributed import (
    Client,
    Event,
    Reschedule,
    Scheduler,
    SchedulerPlugin,
    Worker,
    WorkerPlugin,
    get_client,
    get_worker,
)

from .jobs import JobCancelled, JobError, WorkerJob, keep_workers, stop_worker_server
from .jobs import warm_up as warm_up_worker_server

log = logging.getLogger(__name__)

PLUGIN_NAME = "experimenthub-training"
WORKERS_PLUGIN_NAME = "experimenthub-workers"
WORKERS_TOPIC = "experimenthub-workers"  # {"threads": n}, logged by the scheduler as workers come and go
MAX_EVENT_BYTES = 64 * 1024  # reports larger than this wait for the result instead
_WATCH_INTERVAL = 0.5  # seconds between looks at the task's state (the cancel signal is immediate)


class TrainingPlugin(WorkerPlugin):
    """Per worker: starts the worker server, tracks the running jobs by task key, kills a job whose
    task is cancelled, and every job (and the worker server) when the worker closes.

    Registered once per cluster under :data:`PLUGIN_NAME` and idempotent: hubs sharing a cluster
    share it, and a second hub's registration leaves the running jobs alone."""

    idempotent = True

    def setup(self, worker: Worker) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, WorkerJob] = {}
        self.closing = False
        keep_workers(worker.state.nthreads)  # a job per thread at once: so many workers kept between jobs
        # importing the libraries takes seconds: not on the worker's event loop
        threading.Thread(target=_warm_up, name="experimenthub-worker-server", daemon=True).start()

    def teardown(self, worker: Worker) -> None:
        self.closing = True
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        stop_worker_server()

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish in ("cancelled", "released", "forgotten"):
            with self._lock:
                job = self._jobs.get(key)
            if job is not None:
                job.cancel()

    def track(self, key: Any, job: WorkerJob) -> None:
        with self._lock:
            self._jobs[key] = job

    def untrack(self, key: Any) -> None:
        with self._lock:
            self._jobs.pop(key, None)


class WorkersPlugin(SchedulerPlugin):
    """On the scheduler: whenever a worker joins or leaves (however it left), logs the cluster's
    worker threads to :data:`WORKERS_TOPIC`, so that a hub's queue can follow the cluster."""

    idempotent = True

    def add_worker(self, scheduler: Scheduler, worker: str) -> None:
        self._announce(scheduler)

    def remove_worker(self, scheduler: Scheduler, worker: str, *, stimulus_id: str, **kwargs: Any) -> None:
        self._announce(scheduler)

    @staticmethod
    def _announce(scheduler: Scheduler) -> None:
        threads = sum(state.nthreads for state in scheduler.workers.values())
        scheduler.log_event(WORKERS_TOPIC, {"threads": threads})


def _warm_up() -> None:
    try:
        warm_up_worker_server()
    except Exception:  # the first job starts it again and reports a real error
        log.warning("the experimenthub worker server did not start", exc_info=True)


def run_training(fn: Any, args: tuple[Any, ...], isolation: str, topic: str, cancel_name: str) -> tuple[str, Any]:
    """The Dask task: ``fn(*args, report)`` as a stoppable job on this worker. Returns
    ``("result", value)``, ``("error", (kind, message, trace))`` or ``("cancelled", None)``
    (exceptions with their own constructors do not always survive pickling)."""
    worker = get_worker()
    key = worker.get_current_task()

    def report(kind: str, payload: Any) -> None:
        _send(worker, topic, key, kind, payload)

    report("started", {"address": worker.address, "pid": os.getpid()})
    job = WorkerJob(fn, args, report, isolation=isolation)
    plugin = worker.plugins.get(PLUGIN_NAME)
    if isinstance(plugin, TrainingPlugin):
        plugin.track(key, job)
    over = threading.Event()
    watcher = threading.Thread(target=_watch, args=(job, get_client(), cancel_name, worker, key, over),
                               name=f"experimenthub-watch-{key}", daemon=True)
    watcher.start()
    try:
        return "result", job.run()
    except JobCancelled:
        if isinstance(plugin, TrainingPlugin) and plugin.closing:
            raise Reschedule() from None  # the worker is closing, not the hub stopping: run elsewhere
        return "cancelled", None
    except JobError as exc:
        return "error", (exc.kind, str(exc).removeprefix(f"{exc.kind}: "), exc.trace)
    finally:
        over.set()
        if isinstance(plugin, TrainingPlugin):
            plugin.untrack(key)


def _send(worker: Worker, topic: str, key: Any, kind: str, payload: Any) -> None:
    try:
        message = [key, kind, payload]
        if len(msgpack.packb(message)) > MAX_EVENT_BYTES:
            return
        worker.log_event(topic, message)
    except Exception:  # a report is news, not the result: never let it fail the training
        log.debug("could not report %r of %r", kind, key, exc_info=True)


def _watch(job: WorkerJob, client: Client, cancel_name: str, worker: Worker, key: Any,
           over: threading.Event) -> None:
    """Cancel ``job`` once its cancel signal is set or its task is cancelled; return when it is over."""
    signal = Event(cancel_name, client=client)
    while not over.is_set():
        try:
            if signal.wait(timeout=_WATCH_INTERVAL):
                job.cancel()
                signal.clear()  # the scheduler forgets an event once it is clear and unwatched
                return
        except Exception:  # the scheduler is unreachable: the worker's own death-timeout handles that
            over.wait(_WATCH_INTERVAL)
        task = worker.state.tasks.get(key)
        if task is None or task.state in ("cancelled", "released", "forgotten"):
            job.cancel()
            return
