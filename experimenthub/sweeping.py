"""Sweeps: fit several parameter sets of one experiment, rank them by a backtest metric, keep the best.

A sweep is one job of the experiment (state ``training``, stage ``sweep k/N``; ``stop_training``
stops every candidate). Each candidate is a training through the admission queue and the executor,
so candidates run in parallel as slots allow and never outnumber ``max_trainings``. In MLflow the
sweep is a parent run (role ``sweep``) with one child run per candidate (role ``candidate``: its
params and metrics); the best candidate's fitted model then becomes the experiment's model: a new
model run tagged with the sweep, without fitting it again.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import records
from .admission import JobQueue
from .comparing import TAG_SWEEP, higher_is_better
from .errors import DataError, ExperimentHubError, InvalidConfig, LimitExceeded
from .recovery import lease_tags
from .runner import TrainingJob

if TYPE_CHECKING:
    import pandas as pd

    from .executor import Executor
    from .experiment import Experiment
    from .experiments.base import ExperimentType
    from .plugins.protocols import RunInfo, TrackingPlugin
    from .runner import TrainingRunner
    from .training import TrainingOutput

log = logging.getLogger(__name__)

TAG_PARENT = "mlflow.parentRunId"  # MLflow's own: the UI nests the candidates under the sweep


def candidates(params: Any, limit: int) -> list[dict[str, Any]]:
    """Parameter sets from a list of dicts, or from a grid (a dict of lists: every combination); at
    most ``limit`` of them (counted before any is made: a small grid can name millions)."""
    if isinstance(params, Mapping):
        if not params or not all(isinstance(v, list) and v for v in params.values()):
            raise InvalidConfig("a grid is a mapping of parameter name -> non-empty list of values", "params")
        _check_count(math.prod(len(v) for v in params.values()), limit)
        names = list(params)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*params.values())]
    if isinstance(params, list) and params and all(isinstance(p, Mapping) for p in params):
        _check_count(len(params), limit)
        return [dict(p) for p in params]
    raise InvalidConfig("give a list of parameter dicts, or a grid (a mapping of name -> list of values)", "params")


def _check_count(count: int, limit: int) -> None:
    if count > limit:
        raise LimitExceeded(f"the sweep has {count} candidates; at most {limit} are allowed "
                            f"(setting max_sweep_candidates, EXPERIMENTHUB_MAX_SWEEP_CANDIDATES)")


def plan(current: ExperimentType, params: Any, metric: str | None,
         limit: int) -> tuple[list[ExperimentType], str]:
    """One type instance per candidate (the current config with its model params updated, and an
    evaluation section when the type needs one to rank), validated now; and the metric."""
    cls = type(current)
    default_metric, config = cls.sweep_setup(current.config)
    metric = metric or default_metric
    if metric is None:
        raise InvalidConfig(f"experiment type {cls.type_name!r} has no default metric to rank a sweep by; "
                            f"pass metric=", "metric")
    instances = []
    for index, update in enumerate(candidates(params, limit)):
        candidate = copy.deepcopy(config)
        candidate["create_model"]["params"] = {**candidate["create_model"].get("params", {}), **update}
        try:
            instances.append(cls(candidate))
        except InvalidConfig as exc:
            raise InvalidConfig(f"candidate {index} {update}: {exc}", exc.key) from exc
    return instances, metric


class SweepJob:
    """The experiment's job while it sweeps: the candidates' training jobs, stopped together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: list[TrainingJob] = []
        self._cancelled = threading.Event()

    def add(self, child: TrainingJob) -> None:
        with self._lock:
            self._children.append(child)
        if self._cancelled.is_set():
            child.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            children = list(self._children)
        for child in children:
            child.cancel()

    @property
    def queue_position(self) -> int | None:
        with self._lock:
            positions = [p for p in (c.queue_position for c in self._children) if p is not None]
        return min(positions) if positions else None

    @property
    def where(self) -> str | None:
        with self._lock:
            places = sorted({w for w in (c.where for c in self._children) if w})
        return ", ".join(places) or None


class Sweeps:
    def __init__(self, tracking: TrackingPlugin, executor: Executor, queue: JobQueue, runner: TrainingRunner,
                 publish: Any) -> None:
        self._tracking = tracking
        self._executor = executor
        self._queue = queue
        self._runner = runner
        self._publish = publish

    def start(self, experiment: Experiment, instances: list[ExperimentType], frame: pd.DataFrame,
              metric: str) -> None:
        job = SweepJob()
        number, events = experiment.queue(job, frame)
        self._publish(events)
        self._runner.spawn(experiment, "sweep",
                           lambda previous: self._run(experiment, job, instances, frame, metric, number, previous))

    def _run(self, experiment: Experiment, job: SweepJob, instances: list[ExperimentType], frame: pd.DataFrame,
             metric: str, number: int, previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()
        self._publish(experiment.report_progress(job, f"sweep 0/{len(instances)}", 0.01))
        try:
            parent = self._open_parent(experiment.name, instances, metric, number)
        except Exception as exc:
            self._publish(experiment.fail(job, exc))
            return
        results = self._run_candidates(experiment, job, instances, frame, parent, metric)
        if job.cancelled:
            self._runner.end_run(parent, "KILLED")
            return
        scored = [(i, r) for i, r in enumerate(results)
                  if r is not None and r.evaluation.metrics.get(metric) is not None]
        if not scored:
            self._runner.end_run(parent, "FAILED")
            self._publish(experiment.fail(job, DataError(
                f"no candidate of the sweep produced the metric {metric!r} (see the candidate runs of sweep "
                f"{parent.run_id})")))
            return
        pick = max if higher_is_better(metric) else min
        best_index, best = pick(scored, key=lambda item: item[1].evaluation.metrics[metric])
        try:
            self._tracking.log_metrics(parent.run_id, {f"best_{metric}": best.evaluation.metrics[metric],
                                                       "best_candidate": float(best_index)})
            self._tracking.end_run(parent.run_id, "FINISHED")
        except ExperimentHubError as exc:
            log.warning("could not finish the sweep run %s: %s", parent.run_id, exc)
        self._runner.adopt(experiment, job, best, frame, "sweep", number, {TAG_SWEEP: parent.run_id})

    def _open_parent(self, name: str, instances: list[ExperimentType], metric: str, number: int) -> RunInfo:
        first = instances[0]
        run = self._tracking.start_run(name, f"{name}-sweep-{number}", {
            records.TAG_TYPE: first.type_name, records.TAG_MODEL: first.config["create_model"]["model_type"],
            records.TAG_KIND: "sweep", records.TAG_ROLE: "sweep", **lease_tags()})
        try:
            self._tracking.log_params(run.run_id, {"metric": metric, "candidates": len(instances), "grid": json.dumps(
                [i.config["create_model"]["params"] for i in instances], default=str)[:6000]})
        except BaseException:
            records.abandon(self._tracking, run.run_id)
            raise
        return run

    def _run_candidates(self, experiment: Experiment, job: SweepJob, instances: list[ExperimentType],
                        frame: pd.DataFrame, parent: RunInfo, metric: str) -> list[TrainingOutput | None]:
        from .training import train

        results: list[TrainingOutput | None] = [None] * len(instances)
        done = threading.Semaphore(0)
        finished = [0]
        lock = threading.Lock()

        def run_one(index: int, child: TrainingJob) -> None:
            from .jobs import JobCancelled

            try:
                results[index] = child.work.run()
            except JobCancelled:
                pass
            except Exception as exc:
                log.warning("sweep candidate %d of %r failed: %s", index, experiment.name, exc)
            finally:
                child.release()
            self._log_candidate(experiment.name, instances[index], index, parent, results[index], frame)
            with lock:
                finished[0] += 1
                count = finished[0]
            self._publish(experiment.report_progress(job, f"sweep {count}/{len(instances)}",
                                                     0.05 + 0.9 * count / len(instances)))
            done.release()

        def starter(index: int, child: TrainingJob) -> Callable[[], None]:
            def start() -> None:  # a slot is free: the candidate gets a thread of its own
                threading.Thread(target=run_one, args=(index, child), daemon=True,
                                 name=f"experimenthub-sweep-{experiment.name}-{index}").start()
            return start

        for index, instance in enumerate(instances):
            if job.cancelled:  # stopped before this candidate was queued: it never will be
                done.release()
                continue
            child = TrainingJob(self._executor.work(train, (instance, frame, True), _ignore, type(instance)),
                                self._queue)
            job.add(child)
            child.enqueue(starter(index, child), done.release)
        for _ in instances:
            done.acquire()
        return results

    def _log_candidate(self, name: str, instance: ExperimentType, index: int, parent: RunInfo,
                       output: TrainingOutput | None, frame: pd.DataFrame) -> None:
        try:
            run = self._tracking.start_run(name, f"{name}-candidate-{index}", {
                records.TAG_TYPE: instance.type_name, records.TAG_MODEL: instance.config["create_model"]["model_type"],
                records.TAG_KIND: "sweep", records.TAG_ROLE: "candidate", TAG_PARENT: parent.run_id,
                "experimenthub.candidate": str(index), **lease_tags()})
        except ExperimentHubError as exc:
            log.warning("could not record sweep candidate %d of %r: %s", index, name, exc)
            return
        try:
            self._tracking.log_params(run.run_id, instance.tracking_params())
            if output is not None:
                self._tracking.log_metrics(run.run_id, output.evaluation.metrics)
            self._tracking.end_run(run.run_id, "FINISHED" if output is not None else "FAILED")
        except ExperimentHubError as exc:
            log.warning("could not record sweep candidate %d of %r: %s", index, name, exc)
            records.abandon(self._tracking, run.run_id)


def _ignore(kind: str, payload: Any) -> None:
    """Candidates report no progress of their own: the sweep reports how many are done."""
