"""Fault detection: learn normal operation of a multivariate process, flag rows that leave it.

Config (the seed's shape)::

    {"setup": {"ds": "ds", "features": [...], "label": "fault", "missing": "error"},
     "create_model": {"model_type": "PCA", "params": {"n_components": 0.9, "confidence": 0.99}},
     "anomaly": {"rule": "either"},             # PCA: either | t2 | spe | both
     "evaluate": {"holdout": 0.3},              # optional: 0.3 (the last 30 %) or a bool column
     "retrain": {"threshold": 0.05}}            # metric: anomaly_rate

``setup.target`` is accepted as an alias of ``setup.label`` (a 0/1 column of known faults, used
for metrics only). Alarm limits sit at the ``confidence`` quantile of normal operation, so on
normal data about ``1 - confidence`` of the rows raise an alarm (the expected false-alarm rate; see
:meth:`FaultDetectionExperiment.expected_false_alarm_rate`).

``evaluate.holdout`` (needs ``setup.label``) scores the detector on rows it was not fitted on: a
fraction of the rows taken from the end, or the rows where a boolean column is true. A scaler and
detector are fitted on the normal rows (label 0) of the rest, and the held-out rows give
``holdout_precision``, ``holdout_recall``, ``holdout_f1``, ``holdout_false_alarm_rate`` (on label
0), ``holdout_detection_rate`` and ``holdout_detection_delay`` (rows from the first faulty label to
the first alarm at or after it; absent when none follows); the confusion counts are
:attr:`Evaluation.backtest`. The experiment's model is still fitted on all rows, as without it.

The model is a ``Pipeline(StandardScaler, detector)`` where the detector is
:class:`~experimenthub.experiments.pca_monitor.PCAMonitor` (T² and SPE control limits) or a
:class:`~experimenthub.experiments.pca_monitor.ScoreLimitDetector` around IsolationForest,
EllipticEnvelope or LocalOutlierFactor. Output frames name the timestamp column ``ds``.
Heavy libraries are imported inside functions, so importing this module stays light.

The config is parsed and checked in :mod:`.fault_config`, the table prepared in :mod:`.fault_data`,
and alarms are scored against labels (and the holdout) in :mod:`.fault_evaluation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import DataError, InvalidConfig, NoData, NotReady
from . import fault_config, fault_data, fault_evaluation, fault_figures
from .base import Evaluation, ExperimentType, ParamSpec, Progress
from .eda import EDA_FIGURES

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

_MONITOR = "experimenthub.experiments.pca_monitor"


def __getattr__(name: str) -> Any:  # PCAMonitor & co. live in pca_monitor (imports sklearn)
    if name in ("PCAMonitor", "ScoreLimitDetector"):
        from . import pca_monitor

        return getattr(pca_monitor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class FaultDetectionExperiment(ExperimentType):
    type_name: ClassVar[str] = "fault_detection"
    model_types: ClassVar[tuple[str, ...]] = ("PCA", "IsolationForest", "EllipticEnvelope",
                                              "LocalOutlierFactor")
    retrain_metrics: ClassVar[tuple[str, ...]] = ("anomaly_rate",)
    setup_keys: ClassVar[tuple[str, ...]] = ("ds", "features", "label")
    figure_names: ClassVar[tuple[str, ...] | None] = fault_figures.MODEL_FIGURES
    eda_figure_names: ClassVar[tuple[str, ...] | None] = EDA_FIGURES

    @classmethod
    def rehearsals(cls) -> list[tuple[dict[str, Any], pd.DataFrame]]:
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        stamps = pd.date_range("2020-01-01", periods=60, freq="D")
        table = pd.DataFrame(rng.normal(size=(60, 16)), columns=list("abcdefghijklmnop")).assign(ds=stamps)
        return [({"create_model": {"model_type": model_type, "params": {}}}, table)
                for model_type in ("PCA", "IsolationForest")]

    # -- config ------------------------------------------------------------------------------
    @classmethod
    def parse_config(cls, config: Any) -> dict[str, Any]:
        return fault_config.parse(config, cls.model_types, cls.retrain_metrics)

    @classmethod
    def sweep_setup(cls, config: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """Candidates are ranked by ``holdout_f1``: F1 on rows held out of the fit (the last 30 % when
        the config has no ``evaluate`` section). Needs a label column."""
        if not config["setup"].get("label"):
            raise InvalidConfig("a sweep ranks candidates by F1 on held-out rows, which needs a 0/1 label column "
                                "(setup.label); without one, pass metric= with a metric the fits report",
                                "setup.label")
        if config.get("evaluate"):
            return "holdout_f1", config
        return "holdout_f1", {**config, "evaluate": fault_config.parse_evaluate({"holdout": 0.3}, config["setup"])}

    @classmethod
    def expected_false_alarm_rate(cls, config: Any) -> float | None:
        """The share of normal rows that raise an alarm: ``1 - confidence`` (PCA's rule "both"
        needs both statistics over their limits, independent under the PCA model: ``(1 -
        confidence)²``); with ``contamination`` instead, that fraction (None for "auto")."""
        config = cls.parse_config(config)
        params = config["create_model"]["params"]
        confidence = params.get("confidence")
        if confidence is None:
            contamination = params.get("contamination")
            return float(contamination) if isinstance(contamination, (int, float)) else None
        rate = 1 - confidence
        return round(rate ** 2 if config["anomaly"].get("rule") == "both" else rate, 12)

    @classmethod
    def model_parameters(cls, model_type: str) -> list[ParamSpec]:
        return fault_config.param_specs(model_type)

    # -- data --------------------------------------------------------------------------------
    def _ds_column(self, frame: pd.DataFrame) -> str | None:
        return fault_data.ds_column(frame, self.config["setup"])

    def _features(self, frame: pd.DataFrame) -> list[str]:
        return fault_data.feature_columns(frame, self.config["setup"], self._holdout_column())

    def _prepare(self, frame: Any, features: list[str] | None) -> pd.DataFrame:
        return fault_data.prepare(frame, self.config["setup"], self._holdout_column(), features)

    def validate_data(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = self._prepare(frame, None)
        features, label = self._features(frame), self.config["setup"].get("label")
        if label is not None:
            if label not in frame.columns:
                raise DataError(f"label column {label!r} (setup.label) not found; available columns: "
                                f"{', '.join(map(str, frame.columns))}", label)
            values = frame[label].dropna()
            bad = values[~values.isin([0, 1])]
            if len(bad):
                raise DataError(f"label column {label!r} must hold 0/1 or booleans; found {bad.iloc[0]!r}",
                                label)
        params = self.config["create_model"]["params"]
        components = params.get("n_components", 1)
        if isinstance(components, int) and components > len(features):
            raise InvalidConfig(f"{components} components but only {len(features)} feature columns",
                                "create_model.params.n_components")
        need = (components if isinstance(components, int) else 1) + 2
        if len(frame) < need:
            raise DataError(f"fault_detection needs at least {need} rows here (components + 2); "
                            f"got {len(frame)}")
        if self.config.get("evaluate"):
            fault_evaluation.check_holdout(frame, self.config["setup"]["label"],
                                           self.config["evaluate"]["holdout"], need)
        return frame

    def _holdout_column(self) -> str | None:
        holdout = (self.config.get("evaluate") or {}).get("holdout")
        return holdout if isinstance(holdout, str) else None

    # -- the work ----------------------------------------------------------------------------
    def _detector(self) -> Any:
        from .pca_monitor import PCAMonitor, ScoreLimitDetector

        create = self.config["create_model"]
        params = dict(create["params"])
        if create["model_type"] == "PCA":
            return PCAMonitor(rule=self.config["anomaly"]["rule"], **params)
        confidence = params.pop("confidence", None)
        return ScoreLimitDetector(fault_config.estimator_class(create["model_type"])(**params), confidence=confidence)

    def _model_features(self) -> list[str]:
        if self.model is None:
            raise NotReady("fault_detection has no fitted model yet; train it first")
        return [str(c) for c in self.model.feature_names_in_]

    def _pipeline(self, rows: pd.DataFrame, features: list[str], progress: Progress | None = None) -> Any:
        """``Pipeline(StandardScaler, detector)`` fitted on ``rows``."""
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        def report(stage: str, fraction: float) -> None:
            if progress is not None:
                progress(stage, fraction)

        report("scaling", 0.15)
        scaler = StandardScaler().fit(rows[features])
        scaled = scaler.transform(rows[features])
        report("fitting", 0.3)
        try:
            detector = self._detector().fit(scaled)
        except ValueError as exc:
            model_type = self.config["create_model"]["model_type"]
            raise DataError(f"{model_type} could not be fitted on these rows: {exc}") from exc
        report("limits", 0.6)
        return Pipeline([("scaler", scaler), ("detector", detector)])

    def fit(self, data: pd.DataFrame, progress: Progress) -> Evaluation:
        data = self.validate_data(data)
        features = self._features(data)
        self.model = self._pipeline(data, features, progress)
        detector = self.model[-1]
        progress("evaluating", 0.7)
        frame = self._statistics(data, features, contributors=False)
        metrics = {"anomaly_rate": float(frame["anomaly"].mean())}
        if hasattr(detector, "pca_"):
            metrics["n_components"] = float(detector.pca_.n_components_)
            metrics["explained_variance"] = float(detector.pca_.explained_variance_ratio_.sum())
        label = self.config["setup"].get("label")
        if label is not None:
            metrics.update(fault_evaluation.label_metrics(frame[label], frame["anomaly"]))
        backtest = None
        if self.config.get("evaluate"):
            progress("holdout", 0.75)
            backtest, scores = self._holdout(data, features)
            metrics.update(scores)
        progress("evaluating", 0.85)
        return Evaluation(frame=frame, metrics=metrics, backtest=backtest)

    def _holdout(self, data: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, dict[str, float]]:
        """Fit on the normal rows that are not held out, score the held-out rows against their
        labels: ``holdout_*`` metrics and the confusion counts."""
        label = self.config["setup"]["label"]
        held = fault_evaluation.holdout_mask(data, self.config["evaluate"]["holdout"])
        rest, test = data[~held], data[held]
        model = self._pipeline(rest[rest[label] == 0], features)
        return fault_evaluation.holdout_scores(test[label], model.predict(test[features]) == -1)

    def _statistics(self, frame: pd.DataFrame, features: list[str], contributors: bool) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        detector, scaled = self.model[-1], self.model[:-1].transform(frame[features])
        out = pd.DataFrame(index=frame.index)
        ds = self._ds_column(frame)
        if ds is not None:
            out["ds"] = frame[ds]
        if hasattr(detector, "pca_"):
            out["t2"], out["t2_limit"] = detector.t2(scaled), detector.t2_limit_
            out["spe"], out["spe_limit"] = detector.spe(scaled), detector.spe_limit_
        else:
            out["score"], out["score_limit"] = -detector.score_samples(scaled), detector.score_limit_
        out["anomaly"] = detector.predict(scaled) == -1
        if hasattr(detector, "pca_"):  # first two component scores, for the scatter figure
            scores = detector.transform(scaled)
            for i in range(min(2, scores.shape[1])):
                out[f"pc{i + 1}"] = scores[:, i]
        if contributors and "t2" in out:
            use_spe = (out["spe"] / out["spe_limit"] >= out["t2"] / out["t2_limit"]).to_numpy()[:, None]
            contrib = np.where(use_spe, detector.spe_contributions(scaled), detector.t2_contributions(scaled))
            top = np.argsort(-contrib, axis=1)[:, :3]
            out["top_contributors"] = [", ".join(features[j] for j in row) if flag else None
                                       for row, flag in zip(top, out["anomaly"], strict=True)]
        label = self.config["setup"].get("label")
        if label is not None and label in frame.columns:
            out[label] = frame[label]
        return out

    def predict(self, data: pd.DataFrame | None) -> pd.DataFrame:
        if data is None:
            raise NoData("fault_detection needs rows to predict on; pass data or publish to the "
                         "experiment's queue")
        features = self._model_features()
        return self._statistics(self._prepare(data, features), features, contributors=True)

    def retrain_rows(self, predictions: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
        """The new rows that were not flagged: recent normal operation (matched by position when the
        lengths agree, else by index, e.g. after setup.missing='drop')."""
        normal = ~predictions["anomaly"].astype(bool).to_numpy()
        if len(predictions) == len(new_rows):
            return new_rows[normal]
        if predictions.index.isin(new_rows.index).all() and predictions.index.is_unique:
            return new_rows.loc[predictions.index[normal]]
        return new_rows.iloc[0:0]

    def monitor(self, predictions: pd.DataFrame, metric: str) -> float | None:
        if metric != "anomaly_rate" or predictions is None or len(predictions) == 0 \
                or "anomaly" not in predictions.columns:
            return None
        return float(predictions["anomaly"].astype(bool).mean())

    # -- figures -----------------------------------------------------------------------------
    def eda_figures(self, data: pd.DataFrame) -> dict[str, go.Figure]:
        from . import eda

        return eda.standard_figures(data, ds=self._ds_column(data), columns=self._features(data))

    def figures(self, train: pd.DataFrame, evaluation: Evaluation,
                predictions: pd.DataFrame | None) -> dict[str, go.Figure]:
        return fault_figures.build(evaluation.frame, predictions, self._contribution_stats(train, predictions))

    def _contribution_stats(self, train: pd.DataFrame, predictions: pd.DataFrame | None
                            ) -> fault_figures.ContributionStats:
        """Mean per-variable contribution over flagged new rows (when they carry the feature
        columns), else flagged training rows, else all training rows: SPE and T² contributions
        for PCA, the mean absolute scaled value for the other detectors."""
        import numpy as np

        features = self._model_features()
        new = predictions if predictions is not None and len(predictions) else None
        frame, what = None, ""
        if new is not None and set(features) <= set(new.columns) and new["anomaly"].any():
            frame, what = new[new["anomaly"].astype(bool)], "flagged new samples"
        if frame is None:
            prepared = self._prepare(train, features)
            flagged = self._statistics(prepared, features, contributors=False)["anomaly"].to_numpy()
            frame, what = (prepared[flagged], "flagged training samples") if flagged.any() else (
                prepared, "all training samples (none flagged)")
        detector, scaled = self.model[-1], self.model[:-1].transform(frame[features].astype(float))
        if hasattr(detector, "pca_"):
            means = {"SPE": detector.spe_contributions(scaled).mean(axis=0),
                     "T²": detector.t2_contributions(scaled).mean(axis=0)}
        else:
            means = {"mean |z|": np.abs(scaled).mean(axis=0)}
        return fault_figures.ContributionStats(features=tuple(features), means=means, samples=len(frame), what=what)

    # -- persistence -------------------------------------------------------------------------
    def save_model(self, path: str) -> None:
        import mlflow.sklearn

        from ..model_formats import FAULT_DETECTION_SKOPS, check_sklearn, skops_names

        # skops rebuilds only allow-listed types: ours is fixed in model_formats and is exactly what
        # loading accepts; a model that would be refused there fails here, at training, instead
        mlflow.sklearn.save_model(self.model, path, serialization_format="skops",
                                  skops_trusted_types=skops_names(FAULT_DETECTION_SKOPS),
                                  pip_requirements=_requirements())
        check_sklearn(path, FAULT_DETECTION_SKOPS)

    def load_model(self, path: str) -> None:
        from ..model_formats import FAULT_DETECTION_SKOPS, load_sklearn

        # never mlflow.sklearn.load_model: it would follow a pickle format, or the trusted types
        # listed in the run's own MLmodel; a pickle loads only under the trust_pickles policy
        self.model = load_sklearn(path, FAULT_DETECTION_SKOPS)


def _requirements() -> list[str]:
    """What loading the model needs, pinned; stated rather than inferred (MLflow's inference
    reloads the model in a subprocess, seconds per save, and lists whatever else is installed)."""
    from importlib import metadata

    out = []
    for dist in ("numpy", "scipy", "scikit-learn", "skops", "experimenthub"):
        try:
            out.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            if dist != "experimenthub":  # a source checkout: the class comes with the code
                out.append(dist)
    return out

