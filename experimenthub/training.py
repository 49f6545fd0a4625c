"""The body of a training job, run inside the worker (see :mod:`experimenthub.jobs`).

Everything CPU-heavy happens here, away from the kernel's thread: the fit, the evaluation on the
training data, the files of the run (the model in its MLflow flavor, the evaluation frames as
parquet) and, unless they are deferred, the EDA and model figures (Plotly JSON). Deferred
figures (``defer_figures`` and a type that declares its figure names) are listed by name and built
by the hub when first asked for: with hundreds of experiments most figures are never looked at.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from . import records
from .experiments.base import Evaluation, ExperimentType
from .figures import to_json as figures_to_json

if TYPE_CHECKING:
    import pandas as pd

    from .jobs import Report


@dataclasses.dataclass
class TrainingOutput:
    experiment: ExperimentType
    evaluation: Evaluation
    figures: dict[str, str]  # the model figures built (all of figure_names, or none when deferred)
    eda: dict[str, str]
    figure_names: list[str]
    eda_names: list[str]
    files: dict[str, bytes | str]  # for the run: the model in its flavor, learned.json, evaluation frames


def train(experiment: ExperimentType, data: pd.DataFrame, defer_figures: bool, report: Report) -> TrainingOutput:
    def progress(stage: str, fraction: float) -> None:
        report("progress", (stage, fraction))

    cls = type(experiment)
    if defer_figures and cls.eda_figure_names is not None:
        eda: dict[str, str] = {}
        eda_names = list(cls.eda_figure_names)
    else:
        progress("eda", 0.05)
        eda = figures_to_json(experiment.eda_figures(data))
        eda_names = list(eda)
        report("eda", eda)
    progress("fitting", 0.15)
    evaluation = experiment.fit(data, progress)
    if defer_figures and cls.figure_names is not None:
        figures: dict[str, str] = {}
        figure_names = list(cls.figure_names)
    else:
        progress("figures", 0.85)
        figures = figures_to_json(experiment.figures(data, evaluation, None))
        figure_names = list(figures)
    progress("finishing", 0.95)
    files = records.result_files(experiment, evaluation)  # serialised here, in the worker, not in the hub
    return TrainingOutput(experiment, evaluation, figures, eda, figure_names, eda_names, files)
