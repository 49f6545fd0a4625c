"""A ``fault_detection`` table checked and prepared: its timestamp, its features, missing values.

The timestamp column is ``setup.ds``, else a column named ``ds`` or ``timestamp`` when there is
one; the features are ``setup.features``, else every numeric non-bool column but the timestamp, the
label and the holdout column. :func:`prepare` parses the timestamps, checks that the features are
present, numeric and finite, and handles missing values per ``setup.missing`` ("error", "drop" or
"interpolate"); every failure is a :class:`~experimenthub.errors.DataError` (or
:class:`~experimenthub.errors.NoData`) naming the column. pandas and numpy are imported inside
functions, so importing this module stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DataError, NoData
from ..tables import parse_timestamps

if TYPE_CHECKING:
    import pandas as pd


def ds_column(frame: pd.DataFrame, setup: dict[str, Any]) -> str | None:
    """setup.ds, else a column named ds or timestamp when there is one."""
    return setup.get("ds") or next((c for c in ("ds", "timestamp") if c in frame), None)


def feature_columns(frame: pd.DataFrame, setup: dict[str, Any], holdout_column: str | None) -> list[str]:
    """Configured features, or every numeric non-bool column except ds, label and the holdout column."""
    import pandas as pd

    if setup.get("features"):
        return list(setup["features"])
    skip = {ds_column(frame, setup), setup.get("label"), holdout_column}
    found = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])
             and not pd.api.types.is_bool_dtype(frame[c])]
    if not found:
        raise DataError(f"no numeric feature columns; columns: {', '.join(map(str, frame.columns))}")
    return found


def prepare(frame: Any, setup: dict[str, Any], holdout_column: str | None,
            features: list[str] | None) -> pd.DataFrame:
    """Parse ds, check features exist, are numeric and finite, handle NaN per setup.missing."""
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise NoData("fault_detection got 0 rows; it needs at least a few rows of process data")
    frame = frame.copy()
    ds = ds_column(frame, setup)
    if ds is not None:
        if ds not in frame.columns:
            raise DataError(f"timestamp column {ds!r} (setup.ds) not found; available columns: "
                            f"{', '.join(map(str, frame.columns))}", ds)
        frame[ds] = parse_timestamps(frame[ds], ds)
        if frame[ds].isna().any():
            raise DataError(f"column {ds!r} has {int(frame[ds].isna().sum())} missing timestamp(s)", ds)
    features = features or feature_columns(frame, setup, holdout_column)
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise DataError(f"feature column(s) not found: {', '.join(map(repr, absent))}; available "
                        f"columns: {', '.join(map(str, frame.columns))}", absent[0])
    for column in features:
        if frame[column].isna().all():  # nothing sent for it: numbers-to-be, the missing policy decides
            frame[column] = frame[column].astype(float)
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DataError(f"feature column {column!r} is not numeric (dtype {frame[column].dtype}); "
                            f"convert it or leave it out of setup.features", column)
    values = frame[features].astype(float)
    infinite = np.isinf(values).sum()
    if infinite.any():
        column = str(infinite[infinite > 0].index[0])
        raise DataError(f"feature column {column!r} has {int(infinite[column])} infinite value(s)",
                        column)
    counts = values.isna().sum()
    counts = counts[counts > 0]
    missing = setup["missing"]
    if len(counts) and missing == "error":
        listed = ", ".join(f"{c!r} ({n} missing)" for c, n in counts.items())
        raise DataError(f"feature column(s) with missing values: {listed}; set setup.missing to "
                        f"'drop' or 'interpolate'", str(counts.index[0]))
    frame[features] = values
    if len(counts) and missing == "drop":
        frame = frame.dropna(subset=features)
        if len(frame) == 0:
            raise NoData("no rows left after dropping rows with missing values (setup.missing='drop')")
    elif len(counts):
        frame[features] = values.interpolate(limit_direction="both")
        empty = [c for c in features if frame[c].isna().any()]
        if empty:
            raise DataError(f"feature column {empty[0]!r} has no values to interpolate from", empty[0])
    return frame
