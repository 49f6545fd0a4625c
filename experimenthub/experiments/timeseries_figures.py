"""Plotly figures of a Prophet experiment: forecast, components, anomalies.

The forecast figure shows Prophet's forecast interval; the anomalies figure shows the anomaly band
(``anomaly_lower`` / ``anomaly_upper`` of the frames, wider by default), and both mark the flagged
points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from .timeseries_calendar import Calendar

MODEL_FIGURES = ("forecast", "components", "anomalies")
_BLUE, _BAND, _RED, _GREEN = "#0072B2", "rgba(0,114,178,0.2)", "#D55E00", "#009E73"


def build(model: Any, evaluation: pd.DataFrame, predictions: pd.DataFrame | None,
          config: dict[str, Any], calendar: Calendar | None = None) -> dict[str, go.Figure]:
    return {
        "forecast": forecast(evaluation, predictions, config, getattr(model, "interval_width", None)),
        "components": components(model, evaluation, calendar),
        "anomalies": anomalies(evaluation, predictions, (config.get("anomaly") or {}).get("interval_width")),
    }


def forecast(evaluation: pd.DataFrame, predictions: pd.DataFrame | None, config: dict[str, Any],
             interval_width: float | None = None) -> go.Figure:
    import pandas as pd
    import plotly.graph_objects as go

    frame = evaluation
    if predictions is not None and len(predictions):
        frame = pd.concat([evaluation, predictions], ignore_index=True).drop_duplicates("ds", keep="last")
    frame = frame.sort_values("ds")
    target = config["setup"]["target"]
    band = [
        go.Scatter(x=frame["ds"], y=frame["yhat_upper"], mode="lines", line={"width": 0},
                   hoverinfo="skip", showlegend=False),
        go.Scatter(x=frame["ds"], y=frame["yhat_lower"], mode="lines", line={"width": 0}, fill="tonexty",
                   fillcolor=_BAND, name=f"interval{_percent(interval_width)}"),
    ] if "yhat_lower" in frame else []  # (no interval without uncertainty samples)
    fig = go.Figure([*band, go.Scatter(x=frame["ds"], y=frame["yhat"], mode="lines",
                                       line={"color": _BLUE, "width": 2}, name="forecast")])
    observed = evaluation[evaluation["y"].notna()] if "y" in evaluation else evaluation.iloc[0:0]
    fig.add_trace(go.Scattergl(x=observed["ds"], y=observed["y"], mode="markers", name="actual (training)",
                               marker={"color": "black", "size": 4}))
    if predictions is not None and "y" in predictions and predictions["y"].notna().any():
        new = predictions[predictions["y"].notna()]
        fig.add_trace(go.Scattergl(x=new["ds"], y=new["y"], mode="markers", name="actual (new)",
                                   marker={"color": _GREEN, "size": 5}))
    flagged = _flagged(evaluation, predictions)
    if len(flagged):
        fig.add_trace(go.Scattergl(x=flagged["ds"], y=flagged["y"], mode="markers", name="anomaly",
                                   marker={"color": _RED, "size": 9, "symbol": "x"}))
    if len(observed):
        end = observed["ds"].max()
        fig.add_vline(x=end.timestamp() * 1000, line={"dash": "dot", "color": "gray"})
    fig.update_layout(title=f"Forecast of {target}", xaxis_title="ds", yaxis_title=target,
                      template="plotly_white", hovermode="x unified")
    return fig


def components(model: Any, evaluation: pd.DataFrame, calendar: Calendar | None = None) -> go.Figure:
    """Prophet's own component plot: trend, holidays, regressors, each seasonality over its period.

    Two repairs: multiplicative terms get readable percent ticks (Prophet sets d3's bare ``%``,
    six decimals: "200.000000%"); and a seasonality is drawn only over the weekdays / hours the
    data has (``calendar``): elsewhere it is an extrapolation nothing was fitted on, which for
    weekday data dwarfs the weekdays (and is never forecast)."""
    from prophet.plot import plot_components_plotly

    fig = plot_components_plotly(model, evaluation.drop(
        columns=["y", "anomaly", "anomaly_lower", "anomaly_upper"], errors="ignore"))
    for axis in fig.select_yaxes():
        if axis.tickformat == "%":
            axis.update(tickformat="+~%", hoverformat="+.1%")
    if calendar is not None and (calendar.days is not None or calendar.hours is not None):
        _only_observed(fig, model, calendar)
    fig.update_layout(title="Components", width=None, template="plotly_white")
    return fig


def _only_observed(fig: go.Figure, model: Any, calendar: Calendar) -> None:
    """Blank the seasonality curves (and their bands) where the calendar has no rows: the weekly
    curve on weekdays the data lacks, the daily curve on hours it lacks."""
    import numpy as np
    import pandas as pd

    for trace in fig.data:
        name = (trace.name or "").removesuffix("_upper").removesuffix("_lower")
        season = model.seasonalities.get(name)
        # only the curves drawn by weekday / time of day (Prophet's axis: period under 14 days);
        # a yearly curve is smooth through weekends and nights, and drawn by date
        if season is None or season["period"] >= 14 or trace.x is None or trace.y is None:
            continue
        stamps = pd.DatetimeIndex(pd.to_datetime(np.asarray(trace.x)))
        keep = np.ones(len(stamps), dtype=bool)
        if calendar.days is not None and season["period"] >= 7:
            keep &= np.isin(stamps.day_of_week, calendar.days)
        if calendar.hours is not None:
            keep &= np.isin(stamps.hour, calendar.hours)
        if not keep.all():
            trace.y = np.where(keep, np.asarray(trace.y, dtype=float), np.nan)


def _percent(width: float | None) -> str:
    return "" if width is None else f" ({width:.0%})" if round(width * 100) == width * 100 else f" ({width:.1%})"


def anomalies(evaluation: pd.DataFrame, predictions: pd.DataFrame | None,
              interval_width: float | None = None) -> go.Figure:
    """Residuals (actual - forecast) against the anomaly band, flagged points in red."""
    import pandas as pd
    import plotly.graph_objects as go

    frame = evaluation
    if predictions is not None and "y" in predictions:
        frame = pd.concat([evaluation, predictions], ignore_index=True)
    frame = frame[frame["y"].notna()].sort_values("ds") if "y" in frame else frame.iloc[0:0]
    residual = frame["y"] - frame["yhat"]
    # frames from before the anomaly band had its own columns: the forecast interval was the band
    lower, upper = ("anomaly_lower", "anomaly_upper") if "anomaly_lower" in frame else ("yhat_lower", "yhat_upper")
    band = f"anomaly band{_percent(interval_width)}" if lower == "anomaly_lower" else "interval"
    fig = go.Figure([
        go.Scatter(x=frame["ds"], y=frame[upper] - frame["yhat"], mode="lines", line={"width": 0},
                   hoverinfo="skip", showlegend=False),
        go.Scatter(x=frame["ds"], y=frame[lower] - frame["yhat"], mode="lines", line={"width": 0},
                   fill="tonexty", fillcolor=_BAND, name=band),
        go.Scattergl(x=frame["ds"], y=residual, mode="markers", name="residual",
                     marker={"color": "black", "size": 4}),
    ])
    flagged = frame[frame["anomaly"].astype(bool)] if "anomaly" in frame else frame.iloc[0:0]
    fig.add_trace(go.Scattergl(x=flagged["ds"], y=flagged["y"] - flagged["yhat"], mode="markers",
                               name=f"anomaly ({len(flagged)})", marker={"color": _RED, "size": 9, "symbol": "x"}))
    fig.update_layout(title=f"Anomalies: {len(flagged)} of {len(frame)} observations outside the {band}",
                      xaxis_title="ds", yaxis_title="actual - forecast", template="plotly_white")
    return fig


def _flagged(evaluation: pd.DataFrame, predictions: pd.DataFrame | None) -> pd.DataFrame:
    import pandas as pd

    parts = [f[f["anomaly"].astype(bool)] for f in (evaluation, predictions)
             if f is not None and "anomaly" in f]
    return pd.concat(parts, ignore_index=True) if parts else evaluation.iloc[0:0]
