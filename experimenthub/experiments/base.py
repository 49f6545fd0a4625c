"""What an experiment type is: a config, a model, and the figures that explain it.

An experiment type is a class registered under a name (``time_series``, ``fault_detection``, or
yours through :meth:`ExperimentHub.register_experiment_type` / the ``experimenthub.experiment_types``
entry-point group). The hub creates one instance per experiment with the validated config and
calls, in a training job: :meth:`validate_data` (before the job starts), :meth:`eda_figures`,
:meth:`fit`, :meth:`figures`; later :meth:`predict`, :meth:`save_model`, :meth:`load_model`.

Instances travel between processes (the fit runs in a killable worker process), so they must
pickle; built-in types keep only plain data and fitted library models on ``self``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

Progress = Callable[[str, float], None]
"""``progress(stage, fraction)``: report the current stage and overall progress in 0..1."""


@dataclasses.dataclass
class Evaluation:
    """What a fit produced about its own training data: a frame per training row and metrics.

    ``backtest`` is the out-of-sample evaluation's table when the config asks for one (section
    ``evaluate``): for ``time_series`` one row per fold and forecast step (fold, cutoff, step, ds,
    y, yhat, yhat_lower, yhat_upper, baseline, ...), for ``fault_detection`` the confusion counts
    on the held-out rows. Its summary metrics are in ``metrics`` (``cv_*``, ``holdout_*``)."""

    frame: pd.DataFrame
    metrics: dict[str, float]
    backtest: pd.DataFrame | None = None


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One model parameter, described for generated forms (widgets) and OpenAPI docs."""

    name: str
    kind: str  # "int", "float", "bool", "str", "choice", "json"
    default: Any = None
    choices: tuple[Any, ...] = ()
    help: str = ""


class ExperimentType(abc.ABC):
    type_name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    retrain_metrics: ClassVar[tuple[str, ...]]
    #: "process": fits run in a worker process that stop_training kills; "thread": in a job thread,
    #: stopped cooperatively (use for types defined in a notebook, which a worker cannot import).
    isolation: ClassVar[str] = "process"
    #: the ``setup`` keys a create form edits with column pickers (others stay in the JSON editor);
    #: a key named ``features`` is a list of columns, the others one column each
    setup_keys: ClassVar[tuple[str, ...]] = ()
    #: the names :meth:`figures` and :meth:`eda_figures` return, when they are always the same:
    #: then the hub lists them at once and builds each figure only when it is first asked for
    #: (None: unknown, the figures are built with every training)
    figure_names: ClassVar[tuple[str, ...] | None] = None
    eda_figure_names: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config: dict[str, Any] = self.parse_config(config)
        self.model: Any = None
        #: JSON-able facts a fit learned besides the model (e.g. an inferred frequency); tracked
        #: with the run and restored by ``load``.
        self.learned: dict[str, Any] = {}

    # -- warming up ------------------------------------------------------------------------
    @classmethod
    def warm_up(cls) -> None:
        """Import what :meth:`parse_config` needs (called once, off the caller's thread, when a hub
        starts), so that the first create does not pay for it. The default does nothing."""
        return None

    @classmethod
    def rehearsals(cls) -> list[tuple[dict[str, Any], pd.DataFrame]]:
        """Small ``(config, data)`` pairs a worker fits once before it forks jobs, so that no job
        pays for first-use set-up of the libraries (plotting validators, a backend). Default none."""
        return []

    # -- config and data -------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def parse_config(cls, config: Any) -> dict[str, Any]:
        """Validate and normalise a config (raise :class:`InvalidConfig` naming the key)."""

    @abc.abstractmethod
    def validate_data(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Check training data against the config; return it with parsed types (raise DataError)."""

    @classmethod
    def sweep_setup(cls, config: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """For a sweep: the metric to rank candidates by when none is given (None: the caller must
        give one), and the config the candidates start from (e.g. with a default ``evaluate``
        section, so that they are ranked out of sample). The default: no metric, the config as is."""
        return None, config

    @classmethod
    def model_parameters(cls, model_type: str) -> list[ParamSpec]:
        """The parameters of ``model_type``, for generated forms. Empty when unknown."""
        return []

    @classmethod
    def expected_false_alarm_rate(cls, config: Any) -> float | None:
        """The share of normal rows the type's anomaly rule flags under ``config`` (for a form to
        show next to the setting), or None when the type cannot say. Raises InvalidConfig like
        :meth:`parse_config`."""
        return None

    # -- the work --------------------------------------------------------------------------
    @abc.abstractmethod
    def fit(self, data: pd.DataFrame, progress: Progress) -> Evaluation:
        """Fit ``self.model`` on validated data and evaluate it on that data."""

    @abc.abstractmethod
    def predict(self, data: pd.DataFrame | None) -> pd.DataFrame:
        """Predict on new rows (validated here), or the default ahead-prediction when None."""

    def retrain_rows(self, predictions: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
        """Rows of ``new_rows`` worth adding to the training data when retraining."""
        return new_rows.iloc[0:0]

    def monitor(self, predictions: pd.DataFrame, metric: str) -> float | None:
        """The retrain-policy metric over recent predictions (None when it cannot be computed)."""
        return None

    # -- figures ---------------------------------------------------------------------------
    @abc.abstractmethod
    def figures(
        self, train: pd.DataFrame, evaluation: Evaluation, predictions: pd.DataFrame | None
    ) -> dict[str, go.Figure]:
        """Model figures (``/plot/{name}``) from the evaluation and any predictions since."""

    def eda_figures(self, data: pd.DataFrame) -> dict[str, go.Figure]:
        """EDA figures (``/plot_eda/{name}``); the default covers any table."""
        from . import eda

        return eda.standard_figures(data)

    # -- persistence in MLflow's native flavors --------------------------------------------
    @abc.abstractmethod
    def save_model(self, path: str) -> None:
        """Write ``self.model`` to a new directory ``path`` in its MLflow flavor."""

    @abc.abstractmethod
    def load_model(self, path: str) -> None:
        """Read ``self.model`` back from a directory written by :meth:`save_model`."""

    def tracking_params(self) -> dict[str, Any]:
        """Flat parameters to log in MLflow."""
        create = self.config["create_model"]
        params: dict[str, Any] = {"experiment_type": self.type_name, "model_type": create["model_type"]}
        for key, value in self.config["setup"].items():
            params[f"setup.{key}"] = value
        for key, value in create["params"].items():
            params[f"params.{key}"] = value
        for section in ("forecast", "anomaly", "evaluate"):
            for key, value in (self.config.get(section) or {}).items():
                params[f"{section}.{key}"] = value
        return params
