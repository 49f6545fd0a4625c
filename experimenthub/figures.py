"""An experiment's figures as Plotly JSON, brought up to date on request.

Predictions make the model figures out of date (the forecast grows, new samples join the control
chart); they are rebuilt when next asked for, outside the experiment's lock (Plotly is slow on many
rows), and kept only if nothing changed meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import PlotNotFound

if TYPE_CHECKING:
    from .experiment import Experiment


def to_json(figures: dict[str, Any]) -> dict[str, str]:
    return {name: figure.to_json() for name, figure in figures.items()}


def model_figure(experiment: Experiment, plot_name: str) -> str:
    """A model figure, updated with the predictions made since training."""
    refresh(experiment)
    figure = experiment.figure(plot_name)
    if figure is None:
        reason = experiment.missing_figure_reason("model")
        if reason is not None:
            raise reason
        raise PlotNotFound(experiment.name, plot_name, experiment.figure_names)
    return figure


def eda_figure(experiment: Experiment, plot_name: str) -> str:
    figure = experiment.eda_figure(plot_name)
    if figure is None:
        reason = experiment.missing_figure_reason("EDA")
        if reason is not None:
            raise reason
        raise PlotNotFound(experiment.name, plot_name, experiment.eda_names, kind="EDA figure")
    return figure


def refresh(experiment: Experiment) -> None:
    """Rebuild the model figures if predictions made them out of date."""
    inputs = experiment.figure_inputs()
    if inputs is None:
        return
    type_instance, train, evaluation, predictions = inputs
    experiment.refresh_figures(type_instance, predictions, to_json(type_instance.figures(train, evaluation,
                                                                                         predictions)))
