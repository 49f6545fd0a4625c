"""An experiment's figures as Plotly JSON, built when first asked for and kept up to date.

A training may leave its figures unbuilt (deferred: listed by name only). The first request for
one builds the figures of its kind from the experiment's data, outside the experiment's lock
(Plotly is slow on many rows), and hands those built for the first time to ``on_built`` (the hub
writes them to the experiment's MLflow run). Predictions make the model figures out of date; they
are rebuilt when next asked for, and kept only if nothing changed meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import PlotNotFound

if TYPE_CHECKING:
    from .experiment import Experiment

OnBuilt = Callable[["Experiment", str, dict[str, str]], None]
"""``on_built(experiment, folder, figures)``: figures built for the first time (folder "figures"
or "eda", as in the run's artifacts)."""


def to_json(figures: dict[str, Any]) -> dict[str, str]:
    return {name: figure.to_json() for name, figure in figures.items()}


def model_figure(experiment: Experiment, plot_name: str, on_built: OnBuilt | None = None) -> str:
    """A model figure, built if it never was, updated with the predictions made since training."""
    _check_listed(experiment, plot_name, experiment.figure_names, "model")
    refresh(experiment, on_built)
    figure = experiment.figure(plot_name)
    if figure is None:  # the model changed while it was built: build for the new one
        refresh(experiment, on_built)
        figure = experiment.figure(plot_name)
    if figure is None:
        raise PlotNotFound(experiment.name, plot_name, experiment.figure_names)
    return figure


def eda_figure(experiment: Experiment, plot_name: str, on_built: OnBuilt | None = None) -> str:
    _check_listed(experiment, plot_name, experiment.eda_names, "EDA")
    figure = experiment.eda_figure(plot_name)
    if figure is None:
        inputs = experiment.eda_inputs()
        if inputs is not None:
            type_instance, train = inputs
            first = experiment.attach_eda_figures(type_instance, to_json(type_instance.eda_figures(train)))
            if first and on_built is not None:
                on_built(experiment, "eda", first)
        figure = experiment.eda_figure(plot_name)
    if figure is None:
        raise PlotNotFound(experiment.name, plot_name, experiment.eda_names, kind="EDA figure")
    return figure


def refresh(experiment: Experiment, on_built: OnBuilt | None = None, unbuilt: bool = True) -> None:
    """Rebuild the model figures predictions made out of date and (with ``unbuilt``) build those
    never built."""
    inputs = experiment.figure_inputs(unbuilt)
    if inputs is None:
        return
    type_instance, train, evaluation, predictions = inputs
    first = experiment.refresh_figures(type_instance, predictions,
                                       to_json(type_instance.figures(train, evaluation, predictions)))
    if first and on_built is not None:
        on_built(experiment, "figures", first)


def _check_listed(experiment: Experiment, plot_name: str, names: list[str], kind: str) -> None:
    if plot_name in names:
        return
    reason = experiment.missing_figure_reason(kind)
    if reason is not None:
        raise reason
    raise PlotNotFound(experiment.name, plot_name, names, kind="plot" if kind == "model" else "EDA figure")
