"""The calendar a series lives on: the step between rows and the weekdays / hours it has.

Prophet forecasts whatever timestamps it is given. Data with regular gaps (weekdays only, no
nights) leaves some weekdays or hours without a single observation; forecasting them extrapolates
seasonality into time it never saw, and with multiplicative seasonality that flips signs. Prophet's
documentation on data with regular gaps says to forecast only the periods the data has: this
module finds them and generates future timestamps on them.

``pd.infer_freq`` says ``B`` only for gap-free weekday data and gives up (None) as soon as a
holiday is missing too, or for office hours; so the step is taken from the timestamps' most common
difference and the weekdays / hours from which of them actually occur.

A :class:`Calendar` is plain data: it is stored as JSON in the experiment's ``learned`` facts and
restored with the run, so a loaded model forecasts the same dates.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_DAY = 86_400
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: a weekday (hour) belongs to the calendar when it occurs at least this often relative to the
#: most frequent one: a stray Saturday record in years of weekday data does not open Saturdays
_PRESENT = 0.1
#: how much history is needed before absent weekdays / hours count as a pattern, not chance
_MIN_SPAN_WEEKDAYS, _MIN_SPAN_HOURS = 14 * _DAY, 2 * _DAY


@dataclasses.dataclass(frozen=True)
class Calendar:
    """Where a series has rows: every ``freq`` step, kept only on ``weekdays`` (0 = Monday) and
    ``hours`` (0..23) when those are given (None: all). ``season`` is the number of rows in one
    seasonal cycle (one day for sub-daily data, one week for daily, one year for weekly/monthly)."""

    freq: str
    weekdays: tuple[int, ...] | None = None
    hours: tuple[int, ...] | None = None
    season: int = 1

    # -- JSON (learned.json) -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"freq": self.freq, "weekdays": list(self.weekdays) if self.weekdays is not None else None,
                "hours": list(self.hours) if self.hours is not None else None, "season": self.season}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calendar:
        weekdays, hours = data.get("weekdays"), data.get("hours")
        return cls(freq=str(data["freq"]), weekdays=tuple(weekdays) if weekdays is not None else None,
                   hours=tuple(hours) if hours is not None else None, season=int(data.get("season") or 1))

    def describe(self) -> str:
        """In words, e.g. ``"every h on Mon-Fri, 06:00-21:00"``."""
        text = {"B": "business days (Mon-Fri)", "D": "every day", "h": "every hour"}.get(self.freq,
                                                                                     f"every {self.freq}")
        if self.weekdays is not None:
            text += " on " + _ranges(self.weekdays, lambda d: _WEEKDAYS[d])
        if self.hours is not None:
            text += ", " + _ranges(self.hours, lambda h: f"{h:02d}:00")
        return text

    @property
    def days(self) -> tuple[int, ...] | None:
        """The weekdays the calendar has rows on (0 = Monday), None for all: ``weekdays``, or
        Monday to Friday for business-day steps."""
        if self.weekdays is not None:
            return self.weekdays
        from pandas.tseries.frequencies import to_offset

        return (0, 1, 2, 3, 4) if _code(to_offset(self.freq)) in ("B", "C") else None

    # -- the future ----------------------------------------------------------------------------
    def keep(self, stamps: pd.DatetimeIndex) -> Any:
        """A boolean mask of ``stamps`` that fall on the calendar's weekdays and hours."""
        import numpy as np

        mask = np.ones(len(stamps), dtype=bool)
        if self.weekdays is not None:
            mask &= np.isin(stamps.day_of_week, self.weekdays)
        if self.hours is not None:
            mask &= np.isin(stamps.hour, self.hours)
        return mask

    def after(self, last: pd.Timestamp, periods: int) -> pd.DatetimeIndex:
        """The next ``periods`` timestamps after ``last`` (as Prophet's ``make_future_dataframe``
        steps, then filtered to the calendar's weekdays and hours)."""
        import pandas as pd

        if periods <= 0:
            return pd.DatetimeIndex([], name="ds")
        size = periods + 1
        while True:
            stamps = pd.date_range(start=last, periods=size, freq=self.freq)
            stamps = stamps[stamps > last]
            kept = stamps[self.keep(stamps)]
            if len(kept) >= periods or size > 1000 * (periods + 1):  # (a filter that keeps nothing)
                return pd.DatetimeIndex(kept[:periods], name="ds")
            size *= 2


def infer(ds: pd.Series, freq: str | None = None) -> Calendar:
    """The calendar of the timestamps ``ds``; a given ``freq`` is used as is (no filtering)."""
    import pandas as pd

    if freq:
        return given(freq)
    stamps = pd.DatetimeIndex(pd.Series(ds).drop_duplicates().sort_values())
    inferred = _pandas_freq(stamps)
    # gap-free: pandas knows it (B, D, h, MS, W-SUN, ...); business hours ("bh") are spelled out
    # below as hours and weekdays, which the figures and the season can read
    if inferred and not inferred.startswith(("bh", "cbh")):
        return Calendar(freq=inferred, season=_season(inferred, None))
    step = _step(stamps)
    weekdays = hours = None
    span = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) else 0.0
    seconds = _seconds(step)
    if seconds is not None and seconds <= _DAY and _DAY % seconds == 0:
        if span >= _MIN_SPAN_WEEKDAYS:
            weekdays = _present(stamps.day_of_week, 7)
        if seconds < _DAY and span >= _MIN_SPAN_HOURS:
            hours = _present(stamps.hour, 24)
    if step == "D" and weekdays == (0, 1, 2, 3, 4):
        step, weekdays = "B", None
    calendar = Calendar(freq=step, weekdays=weekdays, hours=hours)
    return dataclasses.replace(calendar, season=_season(step, calendar))


def given(freq: str) -> Calendar:
    """The calendar of a given frequency: every step, no weekday or hour left out."""
    return Calendar(freq=freq, season=_season(freq, None))


def _pandas_freq(stamps: pd.DatetimeIndex) -> str | None:
    import warnings

    import pandas as pd

    if len(stamps) < 3:
        return None
    with warnings.catch_warnings():  # pandas 3 warns that pandas 4 returns an offset: both are read
        warnings.simplefilter("ignore")
        inferred = pd.infer_freq(stamps)
    return getattr(inferred, "freqstr", inferred)


def _code(offset: Any) -> str:
    """The offset's rule code without a multiple: "B", "MS", "W-SUN", "QS-JAN", ..."""
    return getattr(offset, "rule_code", None) or offset.name


def _present(values: Any, size: int) -> tuple[int, ...] | None:
    import numpy as np

    counts = np.bincount(np.asarray(values), minlength=size)
    present = tuple(int(i) for i in np.flatnonzero(counts >= _PRESENT * counts.max()))
    return None if len(present) == size else present


def _step(stamps: pd.DatetimeIndex) -> str:
    """The step between rows of gappy data: whole months when every stamp is a month start
    (or end), else the most common difference (the median would be pulled by the gaps)."""
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    if len(stamps) < 2:
        return "D"
    diffs = pd.Series(stamps[1:] - stamps[:-1])
    if diffs.min() >= pd.Timedelta(days=28) and (stamps.is_month_start.all() or stamps.is_month_end.all()):
        months = pd.Series(stamps.year * 12 + stamps.month).diff().dropna()
        count = int(months[months > 0].mode().min())
        anchor = "MS" if stamps.is_month_start.all() else "ME"
        return f"{count}{anchor}" if count > 1 else anchor
    common = diffs[diffs > pd.Timedelta(0)].mode().min()
    if common % pd.Timedelta(days=1) == pd.Timedelta(0):  # pandas 3 spells a day "24h"
        days = common // pd.Timedelta(days=1)
        return "D" if days == 1 else f"{days}D"
    return to_offset(common).freqstr


def _seconds(freq: str) -> float | None:
    """The fixed length of ``freq`` in seconds, or None for calendar steps (months, business
    days, ...). Read from the offset, not by parsing ``freq`` as a duration: "MS" (month start)
    would read as milliseconds."""
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    offset = to_offset(freq)
    if isinstance(offset, pd.offsets.Tick):
        return float(pd.Timedelta(offset).total_seconds())
    if isinstance(offset, pd.offsets.Day):  # (no longer a Tick in pandas 3)
        return float(offset.n * _DAY)
    return None


def _season(freq: str, calendar: Calendar | None) -> int:
    """Rows in one seasonal cycle: one day of sub-daily rows (24 hourly; only the hours the data
    has), one week of days (7; 5 business days), 52 weeks, 12 months, 4 quarters, else 1."""
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    offset = to_offset(freq)
    name = _code(offset)
    if name in ("B", "C"):
        return 5 if offset.n == 1 else 1
    if name.startswith("W"):
        return 52 if offset.n == 1 else 1
    for prefix, per_year in (("M", 12), ("BM", 12), ("SM", 24), ("Q", 4), ("BQ", 4)):
        if name.startswith(prefix) and name[len(prefix):len(prefix) + 1] in ("", "S", "E", "-"):
            return per_year // offset.n if per_year % offset.n == 0 else 1
    seconds = _seconds(freq)
    if seconds is None or seconds <= 0:
        return 1
    weekdays = calendar.weekdays if calendar is not None else None
    hours = calendar.hours if calendar is not None else None
    if seconds == _DAY:
        return len(weekdays) if weekdays is not None else 7
    if seconds < _DAY and _DAY % seconds == 0:
        slots = pd.date_range("2000-01-03", periods=int(_DAY // seconds), freq=pd.Timedelta(seconds=seconds))
        return int((pd.Index(slots.hour).isin(hours)).sum()) if hours is not None else len(slots)
    if seconds == 7 * _DAY:
        return 52
    return 1


def _ranges(values: tuple[int, ...], name: Any) -> str:
    """``(0, 1, 2, 4)`` -> ``"Mon-Wed, Fri"``."""
    parts, start = [], None
    for i, value in enumerate(values):
        if start is None:
            start = value
        if i + 1 == len(values) or values[i + 1] != value + 1:
            parts.append(name(start) if start == value else f"{name(start)}-{name(value)}")
            start = None
    return ", ".join(parts)
