"""Plotly figures of a Prophet experiment: forecast, components, anomalies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

MODEL_FIGURES = ("forecast", "components", "anomalies")
_BLUE, _BAND, _RED, _GREEN = "#0072B2", "rgba(0,114,178,0.2)", "#D55E00", "#009E73"


def build(model: Any, evaluation: pd.DataFrame, predictions: pd.DataFrame | None,
          config: dict[str, Any]) -> dict[str, go.Figure]:
    return {
        "forecast": forecast(evaluation, predictions, config),
        "components": components(model, evaluation),
        "anomalies": anomalies(evaluation, predictions),
    }


def forecast(evaluation: pd.DataFrame, predictions: pd.DataFrame | None, config: dict[str, Any]) -> go.Figure:
    import pandas as pd
    import plotly.graph_objects as go

    frame = evaluation
    if predictions is not None and len(predictions):
        frame = pd.concat([evaluation, predictions], ignore_index=True).drop_duplicates("ds", keep="last")
    frame = frame.sort_values("ds")
    target = config["setup"]["target"]
    fig = go.Figure([
        go.Scatter(x=frame["ds"], y=frame["yhat_upper"], mode="lines", line={"width": 0},
                   hoverinfo="skip", showlegend=False),
        go.Scatter(x=frame["ds"], y=frame["yhat_lower"], mode="lines", line={"width": 0}, fill="tonexty",
                   fillcolor=_BAND, name="interval"),
        go.Scatter(x=frame["ds"], y=frame["yhat"], mode="lines", line={"color": _BLUE, "width": 2},
                   name="forecast"),
    ])
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


def components(model: Any, evaluation: pd.DataFrame) -> go.Figure:
    """Prophet's own component plot: trend, holidays, regressors, each seasonality over its period."""
    from prophet.plot import plot_components_plotly

    fig = plot_components_plotly(model, evaluation.drop(columns=["y", "anomaly"], errors="ignore"))
    fig.update_layout(title="Components", width=None, template="plotly_white")
    return fig


def anomalies(evaluation: pd.DataFrame, predictions: pd.DataFrame | None) -> go.Figure:
    """Residuals (actual - forecast) against the interval, flagged points in red."""
    import pandas as pd
    import plotly.graph_objects as go

    frame = evaluation
    if predictions is not None and "y" in predictions:
        frame = pd.concat([evaluation, predictions], ignore_index=True)
    frame = frame[frame["y"].notna()].sort_values("ds") if "y" in frame else frame.iloc[0:0]
    residual = frame["y"] - frame["yhat"]
    fig = go.Figure([
        go.Scatter(x=frame["ds"], y=frame["yhat_upper"] - frame["yhat"], mode="lines", line={"width": 0},
                   hoverinfo="skip", showlegend=False),
        go.Scatter(x=frame["ds"], y=frame["yhat_lower"] - frame["yhat"], mode="lines", line={"width": 0},
                   fill="tonexty", fillcolor=_BAND, name="interval"),
        go.Scattergl(x=frame["ds"], y=residual, mode="markers", name="residual",
                     marker={"color": "black", "size": 4}),
    ])
    flagged = frame[frame["anomaly"].astype(bool)] if "anomaly" in frame else frame.iloc[0:0]
    fig.add_trace(go.Scattergl(x=flagged["ds"], y=flagged["y"] - flagged["yhat"], mode="markers",
                               name=f"anomaly ({len(flagged)})", marker={"color": _RED, "size": 9, "symbol": "x"}))
    fig.update_layout(title=f"Anomalies: {len(flagged)} of {len(frame)} observations outside the interval",
                      xaxis_title="ds", yaxis_title="actual - forecast", template="plotly_white")
    return fig


def _flagged(evaluation: pd.DataFrame, predictions: pd.DataFrame | None) -> pd.DataFrame:
    import pandas as pd

    parts = [f[f["anomaly"].astype(bool)] for f in (evaluation, predictions)
             if f is not None and "anomaly" in f]
    return pd.concat(parts, ignore_index=True) if parts else evaluation.iloc[0:0]
