"""How ``fault_detection`` alarms are scored against known faults: label metrics and the holdout.

:func:`label_metrics` compares alarms with a 0/1 label column (precision, recall, F1, the
false-alarm rate on normal rows, the detection rate on faulty ones). ``evaluate.holdout`` holds rows
out of the fit, the last fraction of the table or the rows a boolean column marks
(:func:`holdout_mask`); :func:`check_holdout` says whether the split can be scored, and
:func:`holdout_scores` scores the held-out alarms: ``holdout_*`` metrics, the detection delay and
the confusion counts. numpy, pandas and scikit-learn are imported inside functions, so importing
this module stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def label_metrics(label: pd.Series, flagged: pd.Series) -> dict[str, float]:
    from sklearn.metrics import precision_recall_fscore_support

    known = label.notna()
    truth, alarm = label[known].astype(bool).to_numpy(), flagged[known].to_numpy()
    if len(truth) == 0:
        return {}
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, alarm, average="binary", zero_division=0)
    metrics = {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
    if (~truth).any():
        metrics["false_alarm_rate"] = float(alarm[~truth].mean())
    if truth.any():
        metrics["detection_rate"] = float(alarm[truth].mean())
    return metrics


def holdout_mask(frame: pd.DataFrame, holdout: str | float) -> Any:
    """True for the held-out rows: the last ``holdout`` fraction, or the holdout column."""
    import numpy as np

    if isinstance(holdout, str):
        return frame[holdout].astype(bool).to_numpy()
    count = min(len(frame) - 1, max(1, round(holdout * len(frame))))
    mask = np.zeros(len(frame), dtype=bool)
    mask[len(frame) - count:] = True
    return mask


def check_holdout(frame: pd.DataFrame, label: str, holdout: str | float, need: int) -> None:
    """A held-out evaluation needs both labels among the held-out rows (precision needs faults,
    the false-alarm rate normal rows) and enough normal rows in the rest to fit on."""
    if isinstance(holdout, str):
        if holdout not in frame.columns:
            raise DataError(f"holdout column {holdout!r} (evaluate.holdout) not found; available columns: "
                            f"{', '.join(map(str, frame.columns))}", holdout)
        values = frame[holdout]
        if values.isna().any() or not values.isin([0, 1]).all():
            raise DataError(f"holdout column {holdout!r} must hold booleans (true: held out) with no missing "
                            f"values", holdout)
    held = holdout_mask(frame, holdout)
    what = (f"the rows where {holdout!r} is true" if isinstance(holdout, str)
            else f"the last {held.sum()} rows (evaluate.holdout = {holdout})")
    labels = frame.loc[held, label].dropna()
    counts = {name: int((labels == value).sum()) for name, value in (("normal (0)", 0), ("faulty (1)", 1))}
    absent = [name for name, n in counts.items() if n == 0]
    if absent:
        raise DataError(f"the held-out rows, {what}, have no {' and no '.join(absent)} label in {label!r} "
                        f"({counts['normal (0)']} normal, {counts['faulty (1)']} faulty): precision and the "
                        f"false-alarm rate need both; hold out rows with both labels", label)
    normal = int((frame.loc[~held, label] == 0).sum())
    if normal < need:
        raise DataError(f"the rows not held out have {normal} normal rows (label 0 in {label!r}); fitting "
                        f"the held-out evaluation's limits needs at least {need}: hold out fewer rows", label)


def holdout_scores(label: pd.Series, alarm: Any) -> tuple[pd.DataFrame, dict[str, float]]:
    """The held-out rows' ``label`` against their ``alarm`` flags (rows without a label left
    out): ``holdout_*`` metrics and the confusion counts."""
    import numpy as np
    import pandas as pd

    known = label.notna().to_numpy()
    alarm = alarm[known]
    truth = label.to_numpy()[known].astype(bool)
    metrics = {f"holdout_{k}": v for k, v in label_metrics(pd.Series(truth), pd.Series(alarm)).items()}
    first = int(np.argmax(truth))  # both labels are present (check_holdout)
    after = np.flatnonzero(alarm[first:])
    if len(after):
        metrics["holdout_detection_delay"] = float(after[0])
    metrics["holdout_rows"] = float(len(truth))
    counts = pd.DataFrame({
        "label": [0, 1],
        "no_alarm": [int((~truth & ~alarm).sum()), int((truth & ~alarm).sum())],
        "alarm": [int((~truth & alarm).sum()), int((truth & alarm).sum())],
    })
    return counts, metrics
