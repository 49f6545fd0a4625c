"""A leaderboard from the tracking store: experiments (or one experiment's runs) side by side.

``leaderboard`` reads model runs only (never a sweep's parent or candidates): for many names, each
experiment's latest finished model run; for one name, every model run of it, with the retrain
lineage (which run it replaced, what triggered it, how many rows it added). It works for
experiments the hub does not hold (``state`` is then None). Sorted best first by ``metric`` when
one is given, knowing which metrics are better low and which high; rows without it come last.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import InvalidConfig
from .records import TAG_KIND, TAG_MODEL, TAG_TYPE, role

if TYPE_CHECKING:
    import pandas as pd

    from .plugins.protocols import RunInfo, TrackingPlugin

TAG_REPLACES = "experimenthub.replaces"  # the run a retrain (or sweep) replaced
TAG_TRIGGER = "experimenthub.trigger"  # "manual", or the policy check that fired, in words
TAG_ROWS_ADDED = "experimenthub.rows_added"
TAG_SWEEP = "experimenthub.sweep"  # on the model run a sweep chose: the sweep's parent run

_HIGHER_IS_BETTER = ("precision", "recall", "f1", "detection_rate", "explained_variance", "coverage", "r2")
_COLUMNS = ["experiment", "run_id", "experiment_type", "model_type", "kind", "state", "start_time", "end_time"]
_LINEAGE = {"replaces": TAG_REPLACES, "trigger": TAG_TRIGGER, "rows_added": TAG_ROWS_ADDED, "sweep": TAG_SWEEP}


def higher_is_better(metric: str) -> bool:
    """``f1``, ``holdout_recall``, ``cv_coverage``: higher is better; errors, rates of false alarms,
    delays and everything else: lower is better."""
    base = metric.split("_", 1)[1] if metric.startswith(("cv_", "holdout_", "baseline_cv_")) else metric
    base = base.removeprefix("cv_")
    return base in _HIGHER_IS_BETTER


def leaderboard(tracking: TrackingPlugin, names: str | list[str] | None, metric: str | None,
                states: Mapping[str, str]) -> pd.DataFrame:
    import pandas as pd

    if isinstance(names, str):
        runs = [run for run in tracking.runs(names, max_results=1000) if _is_model_run(run)]
    else:
        latest: dict[str, RunInfo] = {}
        for run in tracking.find_runs("attributes.status = 'FINISHED'"):  # newest first
            if _is_model_run(run) and (names is None or run.experiment_name in names):
                latest.setdefault(run.experiment_name, run)
        runs = list(latest.values())
    rows = [_row(run, states) for run in runs]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=_COLUMNS)
    if metric is not None:
        if metric not in frame.columns:
            known = sorted(c for c in frame.columns if c not in _COLUMNS and not c.startswith("params."))
            raise InvalidConfig(f"no run has the metric {metric!r}; metrics present: {', '.join(known)}", "metric")
        frame = frame.sort_values(metric, ascending=not higher_is_better(metric), na_position="last",
                                  kind="stable")
    return frame.reset_index(drop=True)


def sweep_candidates(tracking: TrackingPlugin, name: str) -> pd.DataFrame:
    """The candidate runs of ``name``'s latest sweep, best first by the sweep's metric."""
    import pandas as pd

    sweeps = [run for run in tracking.runs(name, max_results=1000) if role(run) == "sweep"]
    if not sweeps:
        return pd.DataFrame(columns=_COLUMNS)
    parent = sweeps[0]
    metric = parent.params.get("metric")
    rows = [_row(run, {}) | {"candidate": int(run.tags.get("experimenthub.candidate", -1))}
            for run in tracking.runs(name, max_results=1000)
            if role(run) == "candidate" and run.tags.get("mlflow.parentRunId") == parent.run_id]
    frame = pd.DataFrame(rows)
    if metric and metric in frame.columns:
        frame = frame.sort_values(metric, ascending=not higher_is_better(metric), na_position="last")
    return frame.reset_index(drop=True)


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: timestamps as ISO text, NaN as None."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({str(k): _json(v) for k, v in row.items()})
    return out


def _is_model_run(run: RunInfo) -> bool:
    return TAG_TYPE in run.tags and role(run) == "model"


def _row(run: RunInfo, states: Mapping[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "experiment": run.experiment_name, "run_id": run.run_id, "experiment_type": run.tags.get(TAG_TYPE),
        "model_type": run.tags.get(TAG_MODEL), "kind": run.tags.get(TAG_KIND),
        "state": states.get(run.experiment_name), "start_time": _time(run.start_time),
        "end_time": _time(run.end_time), "status": run.status,
    }
    for key, text in run.params.items():
        if key.startswith("params."):
            row[key] = text
    for key, number in run.metrics.items():
        if not key.startswith("monitor_"):
            row[key] = float(number)
    for column, tag in _LINEAGE.items():
        if tag in run.tags:
            row[column] = run.tags[tag]
    if "rows_added" in row:
        row["rows_added"] = int(row["rows_added"])
    return row


def _time(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def _json(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
