"""The columns of a ``time_series`` table checked and converted, and the frames it answers with.

Timestamps are parsed naive (Prophet wants naive timestamps), the target, regressors and capacities
must read as numbers, and missing values follow ``setup.missing`` ("error", "drop" or
"interpolate"); every failure is a :class:`~experimenthub.errors.DataError` naming the column.
Prediction frames keep the columns of :data:`OUTPUT` that are present. pandas and numpy are
imported inside functions, so importing this module stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DataError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

OUTPUT = ("ds", "yhat", "yhat_lower", "yhat_upper", "y", "anomaly", "anomaly_lower", "anomaly_upper")


def parse_ds(values: pd.Series, column: str) -> pd.Series:
    from ..tables import parse_timestamps

    return parse_timestamps(values, column)  # naive: Prophet wants naive timestamps


def numeric(values: pd.Series, column: str) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    try:
        return pd.to_numeric(values, errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        bad = _first_bad(values, float)
        raise DataError(f"column {column!r} must be numeric (dtype {values.dtype}); cannot read {bad!r} "
                        f"as a number", column) from exc


def _first_bad(values: pd.Series, parse: Callable[[Any], object]) -> Any:
    for value in values:
        try:
            parse(value)
        except (ValueError, TypeError, OverflowError):
            return value
    return None


def handle_missing(frame: pd.DataFrame, columns: list[str], policy: str, ds: str) -> pd.DataFrame:
    import numpy as np

    missing = {c: int(frame[c].isna().sum()) for c in columns}
    infinite = [c for c in columns if c != ds and np.isinf(frame[c].to_numpy(dtype=float)).any()]
    if infinite:
        raise DataError(f"column(s) {infinite} hold infinite values; remove or replace them", infinite[0])
    if missing[ds]:
        raise DataError(f"column {ds!r} has {missing[ds]} missing timestamp(s); every row needs one", ds)
    holes = {c: n for c, n in missing.items() if n}
    if not holes:
        return frame
    if policy == "error":
        first = next(iter(holes))
        raise DataError(
            f"missing values (NaN) in {holes}; clean the data or set setup.missing to 'drop' or 'interpolate'",
            first)
    if policy == "drop":
        return frame.dropna(subset=list(holes))
    frame = frame.sort_values(ds)
    for column in holes:
        frame[column] = frame[column].interpolate(limit_direction="both")
    return frame


def concat(*frames: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    return pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else frames[0]


def output(forecast: pd.DataFrame) -> pd.DataFrame:
    return forecast[[c for c in OUTPUT if c in forecast.columns]].reset_index(drop=True)
