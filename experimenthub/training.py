"""The body of a training job, run inside the worker (see :mod:`experimenthub.jobs`).

Everything CPU-heavy happens here, away from the kernel's thread: EDA figures, the fit, the
evaluation on the training data and the model figures. Figures travel back as Plotly JSON.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .experiments.base import Evaluation, ExperimentType
from .figures import to_json as figures_to_json

if TYPE_CHECKING:
    import pandas as pd

    from .jobs import Report


@dataclasses.dataclass
class TrainingOutput:
    experiment: ExperimentType
    evaluation: Evaluation
    figures: dict[str, str]
    eda: dict[str, str]


def train(experiment: ExperimentType, data: pd.DataFrame, report: Report) -> TrainingOutput:
    def progress(stage: str, fraction: float) -> None:
        report("progress", (stage, fraction))

    progress("eda", 0.05)
    eda = figures_to_json(experiment.eda_figures(data))
    report("eda", eda)
    progress("fitting", 0.15)
    evaluation = experiment.fit(data, progress)
    progress("figures", 0.85)
    figures = figures_to_json(experiment.figures(data, evaluation, None))
    progress("finishing", 0.95)
    return TrainingOutput(experiment, evaluation, figures, eda)
