"""Plotly figures of a fault detection experiment: control chart, anomalies, contributions.

The figures draw results only: the evaluation and prediction frames, and for the contributions
figure a :class:`ContributionStats` the experiment computed. They know nothing of the experiment
or its model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

MODEL_FIGURES = ("control_chart", "anomalies", "contributions")
_TRAIN, _NEW, _ALARM = "#1f77b4", "#9467bd", "#d62728"


@dataclasses.dataclass(frozen=True)
class ContributionStats:
    """The mean contribution of each variable over some samples: what the contributions figure shows."""

    features: tuple[str, ...]
    """The model's variables, in the order of the arrays in ``means``."""
    means: Mapping[str, np.ndarray]
    """One bar trace each, by name (e.g. ``"SPE"``, ``"T²"``): the mean contribution per variable.
    The first one orders the bars, largest first."""
    samples: int
    """How many samples the means are taken over."""
    what: str
    """Which samples they are, in words (``"flagged new samples"``, ...)."""


def build(evaluation: pd.DataFrame, predictions: pd.DataFrame | None,
          contribution_stats: ContributionStats) -> dict[str, go.Figure]:
    ev = evaluation
    new = predictions if predictions is not None and len(predictions) else None
    x_train, x_new = _x_values(ev, new)
    pca = "t2" in ev.columns
    stats = [("t2", "Hotelling T²"), ("spe", "SPE (Q)")] if pca else [("score", "Anomaly score")]
    return {
        "control_chart": control_chart(ev, new, x_train, x_new, stats),
        "anomalies": (score_scatter(ev, new) if pca
                      else control_chart(ev, new, x_train, x_new, stats, "Flagged samples")),
        "contributions": contributions(contribution_stats),
    }


def contributions(stats: ContributionStats) -> go.Figure:
    """Grouped bars of the mean contribution per variable, largest (by the first trace) first."""
    import numpy as np
    import plotly.graph_objects as go

    features = stats.features
    order = np.argsort(-next(iter(stats.means.values())))
    fig = go.Figure([go.Bar(x=[features[i] for i in order], y=values[order], name=name)
                     for name, values in stats.means.items()])
    fig.update_layout(title=f"Mean contribution per variable over {stats.samples} {stats.what}",
                      barmode="group", yaxis_title="contribution", template="plotly_white")
    return fig


def control_chart(ev: pd.DataFrame, new: pd.DataFrame | None, x_train: Any, x_new: Any,
                  stats: list[tuple[str, str]], title: str = "Control chart") -> go.Figure:
    """One subplot per statistic: the series, its dashed limit and flagged samples in red."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(stats), cols=1, shared_xaxes=True, subplot_titles=[t for _, t in stats])
    parts = [("training", ev, x_train, _TRAIN)] + ([("new", new, x_new, _NEW)] if new is not None else [])
    for row, (column, label) in enumerate(stats, start=1):
        for part, frame, x, colour in parts:
            flagged = frame["anomaly"].astype(bool).to_numpy()
            fig.add_trace(go.Scattergl(x=x, y=frame[column], mode="lines", line={"color": colour, "width": 1},
                                       name=f"{label} ({part})"), row=row, col=1)
            marker = {"color": _ALARM, "size": 5, "symbol": "x" if part == "new" else "circle"}
            fig.add_trace(go.Scattergl(x=x[flagged], y=frame[column][flagged], mode="markers", marker=marker,
                                       name=f"flagged ({part})"), row=row, col=1)
        first, last = x_train[0], (x_new if x_new is not None else x_train)[-1]
        fig.add_trace(go.Scatter(x=[first, last], y=[ev[f"{column}_limit"].iloc[0]] * 2, mode="lines",
                                 line={"color": "black", "dash": "dash"}, name=f"{label} limit"),
                      row=row, col=1)
    if x_new is not None:
        fig.add_vline(x=x_new[0], line={"color": "grey", "dash": "dot"}, row="all", col=1)
    fig.update_layout(title=title, template="plotly_white", height=320 * len(stats) + 80)
    return fig


def score_scatter(ev: pd.DataFrame, new: pd.DataFrame | None) -> go.Figure:
    """First two principal component scores (PC1 against sample number with one component)."""
    import numpy as np
    import plotly.graph_objects as go

    fig = go.Figure()
    parts = [("training", ev, _TRAIN)] + ([("new", new, _NEW)] if new is not None else [])
    two = "pc2" in ev.columns
    for part, frame, colour in parts:
        flagged = frame["anomaly"].astype(bool).to_numpy()
        x = frame["pc1"].to_numpy()
        y = frame["pc2"].to_numpy() if two else np.arange(len(frame))
        for mask, name, col in ((~flagged, part, colour), (flagged, f"flagged ({part})", _ALARM)):
            fig.add_trace(go.Scattergl(x=x[mask], y=y[mask], mode="markers", name=name, marker={
                "color": col, "size": 5, "symbol": "x" if part == "new" else "circle", "opacity": 0.7}))
    fig.update_layout(title="Principal component scores, flagged samples in red", xaxis_title="PC1",
                      yaxis_title="PC2" if two else "sample", template="plotly_white")
    return fig


def _x_values(ev: pd.DataFrame, new: pd.DataFrame | None) -> tuple[Any, Any]:
    """Timestamps when both frames have them, else the sample number continuing after training."""
    import numpy as np
    import pandas as pd

    if "ds" in ev.columns and (new is None or "ds" in new.columns):  # (predictions may come from JSON)
        return ev["ds"].to_numpy(), None if new is None else pd.to_datetime(new["ds"]).to_numpy()
    return np.arange(len(ev)), None if new is None else np.arange(len(ev), len(ev) + len(new))
