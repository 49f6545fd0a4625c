"""A training job's life, from the caller's thread to the experiment being ready and logged.

``TrainingRunner.start`` moves the experiment to ``training`` (stage ``queued``) and hands the job
to the admission queue. Once a slot is free the job gets a thread: it fits through the executor
while it opens the MLflow run in parallel, then publishes the results (``ready``), acknowledges the
queue messages the training used, frees its slot and writes the run's results behind
(``tracking: logging -> logged``). A stop or a failure at any point ends the run KILLED / FAILED
and puts the messages back in the queue; a job stopped while queued never starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import records
from .admission import JobQueue, Ticket
from .events import Event
from .recovery import lease_tags

if TYPE_CHECKING:
    import pandas as pd

    from .executor import Executor, WorkItem
    from .experiment import Experiment, Job
    from .experiments.base import ExperimentType
    from .plugins.protocols import Batch, RunInfo, TrackingPlugin
    from .training import TrainingOutput

log = logging.getLogger(__name__)

Publish = Callable[[list[Event]], None]


class TrainingJob:
    """One training: the executor's work item and its place in the admission queue (the
    experiment's :class:`~experimenthub.experiment.Job`)."""

    def __init__(self, work: WorkItem, queue: JobQueue) -> None:
        self.work = work
        self._queue = queue
        self._ticket: Ticket | None = None
        self._started = False

    def enqueue(self, start: Callable[[], None], dropped: Callable[[], None]) -> None:
        # the ticket is ours before it enters the queue: a job that starts and ends at once (stopped
        # before it began) must find it to give its slot back
        self._ticket = self._queue.ticket(self._starting(start), dropped)
        if self.cancelled:  # stopped (or deleted) while it was being queued: it never enters
            self._queue.cancel(self._ticket)
        self._queue.enter(self._ticket)

    def _starting(self, start: Callable[[], None]) -> Callable[[], None]:
        def begin() -> None:
            self._started = True
            start()
        return begin

    def release(self) -> None:
        """The job no longer needs its slot (its fit is over)."""
        if self._ticket is not None:
            self._queue.release(self._ticket)

    @property
    def cancelled(self) -> bool:
        return self.work.cancelled

    def cancel(self) -> None:
        self.work.cancel()
        if self._ticket is not None:
            self._queue.cancel(self._ticket)  # a queued job leaves the queue without starting

    @property
    def queue_position(self) -> int | None:
        return None if self._ticket is None else self._queue.position(self._ticket)

    @property
    def where(self) -> str | None:
        return self.work.where if self._started else None


class TrainingRunner:
    def __init__(self, tracking: TrackingPlugin, executor: Executor, queue: JobQueue, publish: Publish,
                 defer_figures: bool = True) -> None:
        self._tracking = tracking
        self._executor = executor
        self._queue = queue
        self._publish = publish
        self._defer_figures = defer_figures
        # back-pressure towards the tracking store: a job whose model is ready frees its slot once it
        # may write its run; while this many runs are being written, finished fits keep their slots
        self._writing = threading.BoundedSemaphore(2 * (queue.capacity or 4))
        self._lock = threading.Lock()
        self._threads: dict[Experiment, threading.Thread] = {}  # each experiment's latest job thread
        self._writes: set[threading.Thread] = set()  # background writes to runs (write_later)

    def start(self, experiment: Experiment, type_instance: ExperimentType, frame: pd.DataFrame,
              batch: Batch | None, kind: str, tags: dict[str, str] | None = None) -> None:
        """Queue a training of ``experiment``; ExperimentNotFound when it left the hub meanwhile
        (a delete waits for the experiment's lock, then cancels the job queued here), Busy when a
        job owns it. The batch's messages go back to their queue when the job does not succeed.
        ``tags`` go on the run (e.g. the lineage of a retrain)."""
        from .training import train

        job: TrainingJob

        def on_message(message_kind: str, payload: Any) -> None:
            self._on_message(experiment, job, message_kind, payload)

        work = self._executor.work(train, (type_instance, frame, self._defer_figures), on_message,
                                   type(type_instance))
        job = TrainingJob(work, self._queue)
        try:
            number, events = experiment.queue(job, frame)
        except Exception:
            if batch:
                batch.nack()
            raise
        self._publish(events)

        def launch() -> None:
            with self._lock:
                previous = self._threads.get(experiment)
                thread = threading.Thread(target=self._run, name=f"experimenthub-{kind}-{experiment.name}",
                                          args=(experiment, job, type_instance, frame, batch, kind, number,
                                                previous, tags or {}), daemon=True)
                self._threads[experiment] = thread
            thread.start()

        def dropped() -> None:
            if batch:
                batch.nack()

        job.enqueue(launch, dropped)

    def spawn(self, experiment: Experiment, name: str, target: Callable[[threading.Thread | None], None]) -> None:
        """Run ``target(previous job thread)`` as the experiment's latest job thread (``settle`` and
        ``join`` wait for it): for jobs of several parts, such as a sweep."""
        def run(previous: threading.Thread | None) -> None:
            try:
                target(previous)
            finally:
                with self._lock:
                    if self._threads.get(experiment) is threading.current_thread():
                        del self._threads[experiment]

        with self._lock:
            previous = self._threads.get(experiment)
            thread = threading.Thread(target=run, args=(previous,), name=f"experimenthub-{name}-{experiment.name}",
                                      daemon=True)
            self._threads[experiment] = thread
        thread.start()

    def adopt(self, experiment: Experiment, job: Job, output: TrainingOutput, frame: pd.DataFrame, kind: str,
              number: int, tags: dict[str, str]) -> None:
        """Make a finished fit (a sweep's best candidate) the experiment's model: a new model run,
        ``ready``, then the run written behind; as the end of an ordinary training."""
        try:
            run = records.start(self._tracking, experiment.name, output.experiment, frame, kind, number,
                                tags={**lease_tags(), **tags})
        except Exception as exc:
            log.warning("could not open the run of %r: %s", experiment.name, exc)
            self._publish(experiment.fail(job, exc))
            return
        experiment.attach_run(job, run.run_id, run.experiment_id)
        events = experiment.complete(job, output.experiment, output.evaluation, frame, output.figures, output.eda,
                                     output.figure_names, output.eda_names)
        if events is None:  # stopped meanwhile
            self.end_run(run, "KILLED")
            return
        self._publish(events)
        with self._writing:
            self._log_results(experiment, run, output)

    def settle(self, experiment: Experiment) -> None:
        """Wait until the latest job of ``experiment`` is over, its write-behind logging included."""
        with self._lock:
            thread = self._threads.get(experiment)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def write_later(self, experiment: Experiment, what: str, write: Callable[[], None]) -> None:
        """Run ``write`` (more for the experiment's run) in the background, after the run's own
        write-behind logging; ``join`` waits for it too."""
        def run() -> None:
            try:
                self.settle(experiment)
                write()
            except Exception as exc:
                log.warning("could not %s for %r: %s", what, experiment.name, exc)
            finally:
                with self._lock:
                    self._writes.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"experimenthub-write-{experiment.name}", daemon=True)
        with self._lock:
            self._writes.add(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s in all) for every job thread, write-behind logging included."""
        import time

        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [*self._threads.values(), *self._writes]
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _on_message(self, experiment: Experiment, job: TrainingJob, kind: str, payload: Any) -> None:
        if kind == "progress":
            stage, fraction = payload
            self._publish(experiment.report_progress(job, stage, float(fraction)))
        elif kind == "eda":
            self._publish(experiment.attach_eda(job, dict(payload)))

    def _run(self, experiment: Experiment, job: TrainingJob, type_instance: ExperimentType, frame: pd.DataFrame,
             batch: Batch | None, kind: str, number: int, previous: threading.Thread | None,
             tags: dict[str, str]) -> None:
        try:
            self._train(experiment, job, type_instance, frame, batch, kind, number, previous, tags)
        finally:
            job.release()
            with self._lock:
                if self._threads.get(experiment) is threading.current_thread():
                    del self._threads[experiment]

    def _train(self, experiment: Experiment, job: TrainingJob, type_instance: ExperimentType, frame: pd.DataFrame,
               batch: Batch | None, kind: str, number: int, previous: threading.Thread | None,
               tags: dict[str, str]) -> None:
        from .jobs import JobCancelled

        self._publish(experiment.begin(job))
        if previous is not None:
            previous.join()  # the last run's write-behind logging finishes first: runs stay in order
        self._publish(experiment.report_progress(job, "tracking", 0.02))
        # the MLflow run is opened while the worker fits, not before: tracking I/O stays off the
        # critical path; if it fails, the job is cancelled and the experiment fails with its error
        opened: dict[str, Any] = {}

        def open_run() -> None:
            try:
                run = records.start(self._tracking, experiment.name, type_instance, frame, kind, number,
                                    tags={**lease_tags(), **tags})
            except Exception as exc:
                opened["error"] = exc
                job.work.cancel()
                return
            opened["run"] = run
            experiment.attach_run(job, run.run_id, run.experiment_id)

        opener = threading.Thread(target=open_run, name=f"experimenthub-run-{experiment.name}", daemon=True)
        opener.start()
        try:
            output = job.work.run()
            error: BaseException | None = None
        except JobCancelled:
            output, error = None, None
        except Exception as exc:
            output, error = None, exc
        # the fit is over: its slot goes to the next queued job at once (its run may still be opening),
        # once this one may write its run (at most so many runs are written at a time: back-pressure)
        with self._writing:
            job.release()
            self._finish(experiment, job, output, error, opener, opened, frame, batch)

    def _finish(self, experiment: Experiment, job: TrainingJob, output: TrainingOutput | None,
                error: BaseException | None, opener: threading.Thread, opened: dict[str, Any],
                frame: pd.DataFrame, batch: Batch | None) -> None:
        opener.join()
        run: RunInfo | None = opened.get("run")
        error = opened.get("error") or error
        events = None
        if output is not None and run is not None and not job.cancelled:
            events = experiment.complete(job, output.experiment, output.evaluation, frame, output.figures,
                                         output.eda, output.figure_names, output.eda_names)
        if events is None:
            if batch:
                batch.nack()
            self.end_run(run, "FAILED" if error is not None else "KILLED")
            if error is not None:
                log.warning("training of %r failed: %s", experiment.name, error)
                self._publish(experiment.fail(job, error))
            return  # stopped: stop_training / delete already moved the experiment on
        assert run is not None and output is not None
        if batch:
            batch.ack()
        self._publish(events)
        self._log_results(experiment, run, output)

    def _log_results(self, experiment: Experiment, run: RunInfo, output: Any) -> None:
        try:
            records.finish(self._tracking, run.run_id, output.evaluation.metrics, output.files, output.figures,
                           output.eda)
            outcome = "logged"
        except Exception as exc:
            log.warning("logging run %s of %r failed: %s", run.run_id, experiment.name, exc)
            outcome = f"failed: {exc}"
            self.end_run(run, "FAILED")
        self._publish(experiment.tracked(run.run_id, outcome))

    def end_run(self, run: RunInfo | None, status: str) -> None:
        """Mark a run ended (never raises: a store that cannot be reached is logged)."""
        if run is None:
            return
        try:
            self._tracking.end_run(run.run_id, status)
        except Exception:
            log.warning("could not mark run %s %s", run.run_id, status, exc_info=True)
