"""Predicting with a trained experiment, keeping its prediction history and applying its retrain policy.

``Predictor.predict`` takes rows (or the next batch of the experiment's queue, or nothing: the type's
default forecast), predicts with the trained model, and records the predictions on the experiment
together with the new observations worth retraining on. A queued batch is acknowledged only once
its predictions are recorded; a failed predict dead-letters it when the rows are at fault. After
each predict the retrain policy (``config["retrain"]``: a metric over the last ``window``
predictions against a ``threshold``) is checked, and a triggered check starts a retrain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import queued
from .errors import DataError, ExperimentHubError
from .events import Event
from .status import now
from .tables import to_frame

if TYPE_CHECKING:
    import pandas as pd

    from .experiment import Experiment
    from .experiments.base import ExperimentType
    from .plugins.protocols import Batch, DatastreamPlugin

log = logging.getLogger(__name__)

HISTORY_ROWS = 100_000  # rows of predictions (and of new observations) kept per experiment


class Predictor:
    def __init__(self, datastream: DatastreamPlugin, publish: Callable[[list[Event]], None],
                 retrain: Callable[[str, str], object]) -> None:
        """``retrain(name, trigger)`` starts a retrain; ``trigger`` says why, in words."""
        self._datastream = datastream
        self._publish = publish
        self._retrain = retrain

    def predict(self, experiment: Experiment, data: Any = None) -> pd.DataFrame:
        """Predict on ``data``; with none, on the next batch of the experiment's queue, and with an
        empty queue, the type's default (time_series: the configured horizon ahead)."""
        type_instance = experiment.trained()
        batch = None
        frame = None
        if data is not None:
            frame = to_frame(data, "data")
        else:
            batch = self._datastream.next_batch(experiment.name)
            if batch is not None:
                frame = queued.decode(batch)
        try:
            result = type_instance.predict(frame)
        except Exception as exc:
            # the model choked on the rows it was given: a data problem, said in the model's words
            error = _settled_error(batch, exc, "predict on")
            if error is exc:
                raise
            raise error from exc
        try:  # the queued message is acknowledged only once the prediction is recorded
            keep = type_instance.retrain_rows(result, frame) if frame is not None else None
            recorded, check = experiment.record_predictions(
                type_instance, result, keep, HISTORY_ROWS, lambda history: policy_check(type_instance, history))
        except Exception as exc:
            error = _settled_error(batch, exc, "record the predictions of")
            if error is exc:
                raise
            raise error from exc
        if batch:
            batch.ack()
        if not recorded:  # retrained meanwhile: these predictions are stale, nothing to show
            return result
        name = experiment.name
        self._publish([Event("predictions", name, {"rows": len(result)}),
                       Event("figures_updated", name, {"kind": "model", "names": experiment.figure_names})])
        if check and check["triggered"]:
            self._publish([Event("state_changed", name, {"retrain": check})])
            self._auto_retrain(experiment, check)
        return result

    def _auto_retrain(self, experiment: Experiment, check: dict[str, Any]) -> None:
        """Retrain because the policy says so. The predict that triggered it succeeded: a retrain
        that cannot start (busy, or refused data) is recorded in the status, not raised."""
        trigger = (f"policy: {check['metric']} = {check['value']:.6g} above the threshold {check['threshold']:.6g} "
                   f"over the last {check['rows']} predictions")
        try:
            self._retrain(experiment.name, trigger)
        except ExperimentHubError as exc:
            log.warning("automatic retrain of %r did not start: %s", experiment.name, exc)
            experiment.note_retrain_error(str(exc))


def policy_check(type_instance: ExperimentType, history: pd.DataFrame) -> dict[str, Any] | None:
    """The retrain policy's verdict on the prediction history (None without a policy)."""
    policy = type_instance.config.get("retrain") or {}
    if not policy.get("enabled"):
        return None
    recent = history.tail(policy["window"])
    value = type_instance.monitor(recent, policy["metric"])
    scored = len(recent)
    triggered = value is not None and scored >= policy["min_rows"] and value > policy["threshold"]
    return {"metric": policy["metric"], "value": value, "threshold": policy["threshold"], "rows": scored,
            "triggered": bool(triggered), "checked_at": now().isoformat()}


def _settled_error(batch: Batch | None, exc: Exception, doing: str) -> Exception:
    """Settle a queued batch whose predict failed (see queued.settle_failed) and return the error to
    raise: the hub's own as is, anything else as a DataError in the library's words."""
    if batch:
        queued.settle_failed(batch, exc)
    if isinstance(exc, ExperimentHubError):
        return exc
    return DataError(f"Could not {doing} these rows: {type(exc).__name__}: {exc}")
