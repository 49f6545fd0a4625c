"""Exploratory figures for any table: correlation, histogram, series, missing, summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    import plotly.graph_objects as go
    from plotly.basedatatypes import BaseTraceType

EDA_FIGURES = ("correlation", "histogram", "series", "missing", "summary")
_GRID_LIMIT = 12  # more numeric columns than this: one trace at a time with a dropdown


def standard_figures(
    data: pd.DataFrame, ds: str | None = None, columns: list[str] | None = None
) -> dict[str, go.Figure]:
    numeric = columns if columns is not None else _numeric_columns(data, exclude={ds} if ds else set())
    return {
        "correlation": correlation(data, numeric, ds),
        "histogram": histogram(data, numeric),
        "series": series(data, numeric, ds),
        "missing": missing(data),
        "summary": summary(data, numeric),
    }


def _numeric_columns(data: pd.DataFrame, exclude: set[str]) -> list[str]:
    import pandas as pd

    return [c for c in data.columns if c not in exclude and pd.api.types.is_numeric_dtype(data[c])
            and not pd.api.types.is_bool_dtype(data[c])]


def correlation(data: pd.DataFrame, numeric: list[str], ds: str | None) -> go.Figure:
    """Pearson correlation of the numeric columns; with a timestamp, calendar features join in,
    so a univariate series still shows how it moves with hour, weekday and month."""
    import pandas as pd
    import plotly.graph_objects as go

    table = data[numeric].astype(float)
    if ds and ds in data.columns:
        stamps = pd.to_datetime(data[ds])
        calendar = {"hour": stamps.dt.hour, "weekday": stamps.dt.day_of_week, "month": stamps.dt.month}
        for name, values in calendar.items():
            if values.nunique() > 1:
                table = table.assign(**{name: values.to_numpy(dtype=float)})
    corr = table.corr().round(3)
    fig = go.Figure(go.Heatmap(
        z=corr.to_numpy(), x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1,
        colorscale="RdBu", reversescale=True, colorbar={"title": "r"},
        hovertemplate="%{y} vs %{x}: r=%{z}<extra></extra>",
    ))
    fig.update_layout(title="Correlation", yaxis={"autorange": "reversed"}, template="plotly_white")
    return fig


def histogram(data: pd.DataFrame, numeric: list[str]) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if 0 < len(numeric) <= _GRID_LIMIT:
        cols = min(3, len(numeric))
        rows = -(-len(numeric) // cols)
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=numeric)
        for i, column in enumerate(numeric):
            fig.add_trace(go.Histogram(x=data[column], name=column, showlegend=False),
                          row=i // cols + 1, col=i % cols + 1)
        fig.update_layout(height=max(300, 260 * rows))
    else:
        fig = _dropdown(numeric, lambda c: go.Histogram(x=data[c], name=c))
    fig.update_layout(title="Histogram", template="plotly_white")
    return fig


def series(data: pd.DataFrame, numeric: list[str], ds: str | None) -> go.Figure:
    import plotly.graph_objects as go

    x = data[ds] if ds and ds in data.columns else data.index
    if len(numeric) <= _GRID_LIMIT:
        fig = go.Figure([go.Scattergl(x=x, y=data[c], mode="lines", name=c) for c in numeric])
    else:
        fig = _dropdown(numeric, lambda c: go.Scattergl(x=x, y=data[c], mode="lines", name=c))
    fig.update_layout(title="Series", xaxis_title=ds or "row", template="plotly_white")
    return fig


def missing(data: pd.DataFrame) -> go.Figure:
    import plotly.graph_objects as go

    counts = data.isna().sum()
    fig = go.Figure(go.Bar(x=[str(c) for c in counts.index], y=counts.to_numpy(), name="missing"))
    fig.update_layout(title=f"Missing values ({len(data)} rows)", yaxis_title="count", template="plotly_white")
    return fig


def summary(data: pd.DataFrame, numeric: list[str]) -> go.Figure:
    import plotly.graph_objects as go

    if numeric:
        desc = data[numeric].describe().T.round(4)
        header = ["column", *desc.columns]
        cells = [list(desc.index), *(desc[c].tolist() for c in desc.columns)]
    else:
        header, cells = ["column"], [[]]
    fig = go.Figure(go.Table(header={"values": header}, cells={"values": cells}))
    fig.update_layout(title="Summary statistics")
    return fig


def _dropdown(columns: list[str], trace: Callable[[str], BaseTraceType]) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure([trace(c) for c in columns])
    for i, t in enumerate(fig.data):
        t.visible = i == 0
    buttons = [
        {"label": c, "method": "update", "args": [{"visible": [j == i for j in range(len(columns))]}]}
        for i, c in enumerate(columns)
    ]
    fig.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.15, "xanchor": "right"}])
    return fig
