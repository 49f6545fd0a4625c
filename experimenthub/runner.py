"""A training job's life, from the caller's thread to the experiment being ready and logged.

``TrainingRunner.start`` moves the experiment to ``training`` and starts a job thread; the thread
fits in a worker (:mod:`experimenthub.jobs`) while it opens the MLflow run in parallel, then
publishes the results (``ready``), acknowledges the queue messages the training used, and writes
the run's results behind (``tracking: logging -> logged``). A stop or a failure at any point ends
the run KILLED / FAILED and puts the messages back in the queue.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from . import records
from .errors import Busy, ExperimentNotFound
from .experiment import BUSY_STATES, Experiment, now

if TYPE_CHECKING:
    import pandas as pd

    from .experiments.base import ExperimentType
    from .hub import Hub
    from .plugins.protocols import Batch, RunInfo

log = logging.getLogger(__name__)


class TrainingRunner:
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def start(self, experiment: Experiment, impl: ExperimentType, frame: pd.DataFrame,
              batch: Batch | None, kind: str) -> None:
        from .jobs import WorkerJob
        from .training import train

        with experiment._lock:
            if self._hub.experiments.get(experiment.name) is not experiment:
                # deleted (or replaced by a load) since the caller looked it up: train nothing. A
                # delete after this point waits for this lock, then cancels the job started here.
                if batch:
                    batch.nack()
                raise ExperimentNotFound(experiment.name, self._hub.experiments)
            if experiment._state in BUSY_STATES and experiment._job is not None:
                if batch:
                    batch.nack()
                raise Busy(f"Experiment {experiment.name!r} is already training")
            previous = experiment._thread
            experiment._runs += 1
            number = experiment._runs
            job = WorkerJob(train, (impl, frame), lambda k, p: self._on_message(experiment, job, k, p),
                            isolation=isolation(type(impl)))
            thread = threading.Thread(target=self._run, name=f"experimenthub-{kind}-{experiment.name}",
                                      args=(experiment, job, impl, frame, batch, kind, number, previous),
                                      daemon=True)
            experiment._set(job=job, thread=thread, last_data=frame, state="training", stage="queued",
                            progress=0.0, error=None, started=now(), ended=None, tracking=None)
            status = experiment.status
        self._hub._publish("state_changed", experiment.name, status=status.to_dict())
        thread.start()

    def _on_message(self, experiment: Experiment, job: Any, kind: str, payload: Any) -> None:
        with experiment._lock:
            if experiment._job is not job or job.cancelled:
                return
            if kind == "progress":
                stage, fraction = payload
                experiment._set(stage=stage, progress=float(fraction))
            elif kind == "eda":
                experiment._set(eda=dict(payload))
        if kind == "progress":
            self._hub._publish("progress", experiment.name, stage=payload[0], progress=float(payload[1]))
        elif kind == "eda":
            self._hub._publish("figures_updated", experiment.name, kind="eda", names=list(payload))

    def _run(self, experiment: Experiment, job: Any, impl: ExperimentType, frame: pd.DataFrame,
             batch: Batch | None, kind: str, number: int, previous: threading.Thread | None) -> None:
        from .jobs import JobCancelled

        tracking = self._hub.tracking
        if previous is not None and previous is not threading.current_thread():
            previous.join()  # the last run's write-behind logging finishes first: runs stay in order
        self._on_message(experiment, job, "progress", ("tracking", 0.02))
        # the MLflow run is opened while the worker fits, not before: tracking I/O stays off the
        # critical path; if it fails, the job is cancelled and the experiment fails with its error
        opened: dict[str, Any] = {}

        def open_run() -> None:
            try:
                run = records.start(tracking, experiment.name, impl, frame, kind, number)
            except Exception as exc:
                opened["error"] = exc
                job.cancel()
                return
            opened["run"] = run
            with experiment._lock:
                if experiment._job is job:
                    experiment._set(run_id=run.run_id, exp_id=run.experiment_id)

        opener = threading.Thread(target=open_run, name=f"experimenthub-run-{experiment.name}", daemon=True)
        opener.start()
        try:
            output = job.run()
            error: BaseException | None = None
        except JobCancelled:
            output, error = None, None
        except Exception as exc:
            output, error = None, exc
        opener.join()
        run = opened.get("run")
        error = opened.get("error") or error
        with experiment._lock:
            current = experiment._job is job and output is not None and not job.cancelled and run is not None
            if current:
                experiment._set(impl=output.experiment, evaluation=output.evaluation, figures=output.figures,
                                eda=output.eda, train_data=frame, predictions=None, new_rows=None,
                                figures_stale=False, state="ready", stage="done", progress=1.0,
                                ended=now(), tracking="logging")
                status = experiment.status
        if not current:
            if batch:
                batch.nack()
            self._end_run(run, "FAILED" if error is not None else "KILLED")
            if error is not None:
                self._fail(experiment, job, error)
            return  # stopped: stop_training / delete already moved the experiment on
        if batch:
            batch.ack()
        self._hub._publish("state_changed", experiment.name, status=status.to_dict())
        self._hub._publish("figures_updated", experiment.name, kind="model", names=list(output.figures))
        self._log_results(experiment, run, output)

    def _log_results(self, experiment: Experiment, run: RunInfo, output: Any) -> None:
        try:
            records.finish(self._hub.tracking, run.run_id, output.experiment, output.evaluation,
                           output.figures, output.eda)
            outcome = "logged"
        except Exception as exc:
            log.warning("logging run %s of %r failed: %s", run.run_id, experiment.name, exc)
            outcome = f"failed: {exc}"
            self._end_run(run, "FAILED")
        with experiment._lock:
            if experiment._run_id == run.run_id:
                experiment._set(tracking=outcome)
        self._hub._publish("tracking", experiment.name, run_id=run.run_id, tracking=outcome)

    def _end_run(self, run: RunInfo | None, status: str) -> None:
        if run is None:
            return
        try:
            self._hub.tracking.end_run(run.run_id, status)
        except Exception:
            log.warning("could not mark run %s %s", run.run_id, status, exc_info=True)

    def _fail(self, experiment: Experiment, job: Any, exc: BaseException) -> None:
        with experiment._lock:
            if experiment._job is not job:
                return
            experiment._set(state="failed", stage="failed", error=str(exc) or type(exc).__name__, ended=now())
            status = experiment.status
        log.warning("training of %r failed: %s", experiment.name, exc)
        self._hub._publish("state_changed", experiment.name, status=status.to_dict())


def isolation(cls: type) -> str:
    """Worker processes import the type by module; types living in ``__main__`` (a notebook) cannot
    be imported there, so they run in a thread and stop cooperatively."""
    if getattr(cls, "isolation", "process") == "thread" or cls.__module__ in ("__main__", "__mp_main__"):
        return "thread"
    return "process"
