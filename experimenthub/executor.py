"""Where a training job's function runs: the role (:class:`Executor`) and the local executor.

An executor makes :class:`WorkItem` objects: ``run()`` blocks the calling thread until the
function's result is back (raising :class:`~experimenthub.jobs.JobCancelled` or
:class:`~experimenthub.jobs.JobError`), ``cancel()`` stops it at once from any thread, and
``report(kind, payload)`` messages from the function reach ``on_message`` meanwhile. The local
executor runs functions in killable children of the worker server (:mod:`experimenthub.jobs`);
the Dask executor (:mod:`experimenthub.dask_executor`, imported only when chosen) runs them on a
Dask cluster. :func:`make_executor` picks one from the settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .jobs import Report, WorkerJob, isolation_of, keep_workers
from .jobs import warm_up as warm_up_worker_server

if TYPE_CHECKING:
    from .admission import JobQueue
    from .settings import Settings


class WorkItem(Protocol):
    @property
    def cancelled(self) -> bool: ...

    @property
    def where(self) -> str | None:
        """Where it runs: ``"local"``, or a Dask worker's address; None before it started."""

    def run(self) -> Any: ...

    def cancel(self) -> None: ...


class Executor(Protocol):
    name: str

    def work(self, fn: Callable[..., Any], args: tuple[Any, ...], on_message: Report, cls: type) -> WorkItem:
        """A work item that runs ``fn(*args, report)`` for experiment type ``cls``."""

    def warm_up(self) -> None: ...

    def slots(self) -> int | None:
        """How many jobs it can run at once (None: unknown)."""

    def follow_slots(self, on_change: Callable[[int], None]) -> None:
        """Call ``on_change(slots)`` whenever that number changes (a cluster's workers come and go)."""

    def health(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Jobs in children of this machine's worker server (or, for types a worker cannot import,
    in the calling thread)."""

    name = "local"

    def __init__(self, trainings: int | None = None) -> None:
        if trainings:
            keep_workers(trainings)  # as many workers kept between jobs as may run at once

    def work(self, fn: Callable[..., Any], args: tuple[Any, ...], on_message: Report, cls: type) -> WorkItem:
        return WorkerJob(fn, args, on_message, isolation=isolation_of(cls))

    def warm_up(self) -> None:
        warm_up_worker_server()

    def slots(self) -> int | None:
        import os

        return os.cpu_count()

    def follow_slots(self, on_change: Callable[[int], None]) -> None:
        pass  # this machine's cores do not change

    def health(self) -> dict[str, Any]:
        return {"healthy": True, "details": {"executor": "local"}}

    def close(self) -> None:
        pass


def make_executor(settings: Settings, dask_client: Any = None) -> Executor:
    """The executor the settings ask for: Dask with ``executor="dask"`` or a given client (a
    ``distributed.Client``), else local."""
    if dask_client is None and settings.executor != "dask":
        return LocalExecutor(settings.max_trainings)
    try:
        from .dask_executor import DaskExecutor
    except ImportError as exc:
        from .errors import InvalidConfig

        raise InvalidConfig(f"the Dask executor needs dask[distributed] (pip install 'experimenthub[dask]'): "
                            f"{exc}", "executor") from exc

    return DaskExecutor(dask_client, settings.dask_address, settings.home)


def queue_capacity(settings: Settings, executor: Executor) -> int:
    """Trainings the hub runs at once: ``max_trainings`` when it was set, else, on Dask, the
    cluster's worker threads (each job holds one while it fits)."""
    if _follows_cluster(settings, executor):
        return executor.slots() or settings.max_trainings
    return settings.max_trainings


def follow_capacity(settings: Settings, executor: Executor, queue: JobQueue) -> None:
    """On Dask, unless ``max_trainings`` was set, the queue's capacity follows the cluster's worker
    threads as workers join and leave (an adaptive cluster, a worker started on another machine)."""
    if _follows_cluster(settings, executor):
        executor.follow_slots(queue.set_capacity)


def _follows_cluster(settings: Settings, executor: Executor) -> bool:
    return executor.name == "dask" and "max_trainings" not in settings.model_fields_set
