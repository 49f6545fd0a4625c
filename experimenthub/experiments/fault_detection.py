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
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import check_keys, choice, number, optional_section, optional_str, parse_common, parse_retrain
from ..errors import DataError, InvalidConfig, NoData, NotReady
from ..tables import parse_timestamps
from . import fault_figures
from .base import Evaluation, ExperimentType, ParamSpec, Progress
from .eda import EDA_FIGURES

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

RULES = ("either", "t2", "spe", "both")
MISSING = ("error", "drop", "interpolate")
_ESTIMATOR_MODULES = {"IsolationForest": "sklearn.ensemble", "EllipticEnvelope": "sklearn.covariance",
                      "LocalOutlierFactor": "sklearn.neighbors"}
_MONITOR = "experimenthub.experiments.pca_monitor"


def __getattr__(name: str) -> Any:  # PCAMonitor & co. live in pca_monitor (imports sklearn)
    if name in ("PCAMonitor", "ScoreLimitDetector"):
        from . import pca_monitor

        return getattr(pca_monitor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _estimator_class(model_type: str) -> type:
    import importlib

    return getattr(importlib.import_module(_ESTIMATOR_MODULES[model_type]), model_type)


def _confidence(params: dict[str, Any], key: str) -> float:
    value = number(params, "confidence", key, 0.99, low=0, high=1)
    if not 0 < value < 1:
        raise InvalidConfig(f"must be strictly between 0 and 1, got {value!r}", f"{key}.confidence")
    return float(value)


def _n_components(params: dict[str, Any], key: str) -> int | float:
    value = number(params, "n_components", key, 0.9, low=0)
    if isinstance(value, float) and value >= 1 and value.is_integer():
        value = int(value)  # 5.0 from a float widget means 5 components
    if value == 0 or (isinstance(value, float) and value >= 1):
        raise InvalidConfig(f"must be an int >= 1 (components) or a float in (0, 1) (fraction of "
                            f"variance explained), got {value!r}", f"{key}.n_components")
    return value


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
        config = parse_common(config, cls.model_types)
        raw = config["setup"]
        check_keys(raw, ("ds", "features", "label", "target", "missing"), "setup")
        label, target = optional_str(raw, "label", "setup"), optional_str(raw, "target", "setup")
        if label and target and label != target:
            raise InvalidConfig(f"'target' is an alias of 'label'; they name different columns "
                                f"({target!r} vs {label!r}), give one", "setup.target")
        missing = choice(raw, "missing", "setup", MISSING, "error")
        setup = {"ds": optional_str(raw, "ds", "setup"), "label": label or target,
                 "features": raw.get("features"), "missing": missing}
        features = setup["features"]
        if features is not None:
            if (not isinstance(features, list) or not features
                    or not all(isinstance(f, str) and f for f in features)):
                raise InvalidConfig(f"must be a non-empty list of column names, got {features!r}",
                                    "setup.features")
            if len(set(features)) != len(features):
                raise InvalidConfig("lists a column more than once", "setup.features")
            for role in ("ds", "label"):
                if setup[role] in features:
                    raise InvalidConfig(f"{setup[role]!r} is the {role} column and cannot be a feature",
                                        "setup.features")
        config["setup"] = {k: v for k, v in setup.items() if v is not None}

        create, key = config["create_model"], "create_model.params"
        params = dict(create["params"])
        if create["model_type"] == "PCA":
            check_keys(params, ("n_components", "confidence"), key)
            params = {"n_components": _n_components(params, key), "confidence": _confidence(params, key)}
        else:
            params = cls._estimator_params(create["model_type"], params, key)
        create["params"] = params

        anomaly = config["anomaly"]
        check_keys(anomaly, ("rule",), "anomaly")
        rule = choice(anomaly, "rule", "anomaly", RULES, "either")
        if create["model_type"] != "PCA" and rule != "either":
            raise InvalidConfig(f"applies to PCA only (T² and SPE); {create['model_type']} has one score",
                                "anomaly.rule")
        config["anomaly"] = {"rule": rule} if create["model_type"] == "PCA" else {}
        check_keys(config["forecast"], (), "forecast")
        evaluate = optional_section(config, "evaluate")
        if evaluate is not None:
            config["evaluate"] = _parse_evaluate(evaluate, config["setup"])
        config["retrain"] = parse_retrain(config["retrain"], cls.retrain_metrics, "anomaly_rate")
        return config

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
        return "holdout_f1", {**config, "evaluate": _parse_evaluate({"holdout": 0.3}, config["setup"])}

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

    @staticmethod
    def _estimator_params(model_type: str, params: dict[str, Any], key: str) -> dict[str, Any]:
        estimator = _estimator_class(model_type)
        if model_type == "LocalOutlierFactor" and params.get("novelty", True) is not True:
            raise InvalidConfig("LocalOutlierFactor always runs with novelty=True so it can score new "
                                "rows; remove 'novelty' or set it to true", f"{key}.novelty")
        check_keys(params, (*sorted(estimator().get_params()), "confidence"), key)
        if params.get("contamination", 0) is None:
            del params["contamination"]
        if "contamination" in params:
            if "confidence" in params:
                raise InvalidConfig("give either 'confidence' (limit at that quantile of the training "
                                    "scores) or 'contamination' (the estimator's own threshold), not both",
                                    f"{key}.contamination")
        else:
            params["confidence"] = _confidence(params, key)
        if model_type in ("IsolationForest", "EllipticEnvelope"):  # reproducible fits
            params.setdefault("random_state", 0)
        if model_type == "LocalOutlierFactor":
            params["novelty"] = True
        try:  # scikit-learn checks parameters in fit only; _validate_params is that check without a fit
            estimator(**{k: v for k, v in params.items() if k != "confidence"})._validate_params()  # noqa: SLF001
        except ValueError as exc:  # sklearn's InvalidParameterError names the parameter
            found = re.search(r"'(\w+)' parameter", str(exc))
            raise InvalidConfig(str(exc), f"{key}.{found.group(1)}" if found else key) from None
        return params

    @classmethod
    def model_parameters(cls, model_type: str) -> list[ParamSpec]:
        conf = ParamSpec("confidence", "float", 0.99, help="alarm limit confidence level in (0, 1)")
        contamination = ParamSpec("contamination", "json", None, help="expected outlier fraction; when "
                                  "set, the estimator's own threshold replaces 'confidence'")
        specs = {
            "PCA": [ParamSpec("n_components", "float", 0.9, help="fraction of variance in (0, 1), or an "
                              "integer number of components"), conf],
            "IsolationForest": [ParamSpec("n_estimators", "int", 100), ParamSpec(
                "max_samples", "json", "auto", help='"auto", an int or a fraction'), contamination, conf],
            "EllipticEnvelope": [ParamSpec("support_fraction", "float", None, help="null: sklearn's "
                                           "default"), contamination, conf],
            "LocalOutlierFactor": [ParamSpec("n_neighbors", "int", 20), contamination, conf],
        }
        return specs.get(model_type, [])

    # -- data --------------------------------------------------------------------------------
    def _ds_column(self, frame: pd.DataFrame) -> str | None:
        """setup.ds, else a column named ds or timestamp when there is one."""
        return self.config["setup"].get("ds") or next((c for c in ("ds", "timestamp") if c in frame), None)

    def _features(self, frame: pd.DataFrame) -> list[str]:
        """Configured features, or every numeric non-bool column except ds and label."""
        import pandas as pd

        setup = self.config["setup"]
        if setup.get("features"):
            return list(setup["features"])
        skip = {self._ds_column(frame), setup.get("label"), self._holdout_column()}
        found = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])
                 and not pd.api.types.is_bool_dtype(frame[c])]
        if not found:
            raise DataError(f"no numeric feature columns; columns: {', '.join(map(str, frame.columns))}")
        return found

    def _prepare(self, frame: Any, features: list[str] | None) -> pd.DataFrame:
        """Parse ds, check features exist, are numeric and finite, handle NaN per setup.missing."""
        import numpy as np
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        if len(frame) == 0:
            raise NoData("fault_detection got 0 rows; it needs at least a few rows of process data")
        frame = frame.copy()
        ds = self._ds_column(frame)
        if ds is not None:
            if ds not in frame.columns:
                raise DataError(f"timestamp column {ds!r} (setup.ds) not found; available columns: "
                                f"{', '.join(map(str, frame.columns))}", ds)
            frame[ds] = parse_timestamps(frame[ds], ds)
            if frame[ds].isna().any():
                raise DataError(f"column {ds!r} has {int(frame[ds].isna().sum())} missing timestamp(s)", ds)
        features = features or self._features(frame)
        absent = [c for c in features if c not in frame.columns]
        if absent:
            raise DataError(f"feature column(s) not found: {', '.join(map(repr, absent))}; available "
                            f"columns: {', '.join(map(str, frame.columns))}", absent[0])
        for column in features:
            if frame[column].isna().all():  # nothing sent for it: numbers-to-be, the missing policy decides
                frame[column] = frame[column].astype(float)
            if not pd.api.types.is_numeric_dtype(frame[column]):
                raise DataError(f"feature column {column!r} is not numeric (dtype {frame[column].dtype}); "
                                f"convert it or leave it out of setup.features", column)
        values = frame[features].astype(float)
        infinite = np.isinf(values).sum()
        if infinite.any():
            column = str(infinite[infinite > 0].index[0])
            raise DataError(f"feature column {column!r} has {int(infinite[column])} infinite value(s)",
                            column)
        counts = values.isna().sum()
        counts = counts[counts > 0]
        missing = self.config["setup"]["missing"]
        if len(counts) and missing == "error":
            listed = ", ".join(f"{c!r} ({n} missing)" for c, n in counts.items())
            raise DataError(f"feature column(s) with missing values: {listed}; set setup.missing to "
                            f"'drop' or 'interpolate'", str(counts.index[0]))
        frame[features] = values
        if len(counts) and missing == "drop":
            frame = frame.dropna(subset=features)
            if len(frame) == 0:
                raise NoData("no rows left after dropping rows with missing values (setup.missing='drop')")
        elif len(counts):
            frame[features] = values.interpolate(limit_direction="both")
            empty = [c for c in features if frame[c].isna().any()]
            if empty:
                raise DataError(f"feature column {empty[0]!r} has no values to interpolate from", empty[0])
        return frame

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
            self._check_holdout(frame, need)
        return frame

    def _holdout_column(self) -> str | None:
        holdout = (self.config.get("evaluate") or {}).get("holdout")
        return holdout if isinstance(holdout, str) else None

    def _holdout_mask(self, frame: pd.DataFrame) -> Any:
        """True for the held-out rows: the last ``holdout`` fraction, or the holdout column."""
        import numpy as np

        holdout = self.config["evaluate"]["holdout"]
        if isinstance(holdout, str):
            return frame[holdout].astype(bool).to_numpy()
        count = min(len(frame) - 1, max(1, round(holdout * len(frame))))
        mask = np.zeros(len(frame), dtype=bool)
        mask[len(frame) - count:] = True
        return mask

    def _check_holdout(self, frame: pd.DataFrame, need: int) -> None:
        """A held-out evaluation needs both labels among the held-out rows (precision needs faults,
        the false-alarm rate normal rows) and enough normal rows in the rest to fit on."""
        label, holdout = self.config["setup"]["label"], self.config["evaluate"]["holdout"]
        if isinstance(holdout, str):
            if holdout not in frame.columns:
                raise DataError(f"holdout column {holdout!r} (evaluate.holdout) not found; available columns: "
                                f"{', '.join(map(str, frame.columns))}", holdout)
            values = frame[holdout]
            if values.isna().any() or not values.isin([0, 1]).all():
                raise DataError(f"holdout column {holdout!r} must hold booleans (true: held out) with no missing "
                                f"values", holdout)
        held = self._holdout_mask(frame)
        what = (f"the rows where {holdout!r} is true" if isinstance(holdout, str)
                else f"the last {held.sum()} rows (evaluate.holdout = {holdout})")
        labels = frame.loc[held, label].dropna()
        counts = {name: int((labels == value).sum()) for name, value in (("normal (0)", 0), ("faulty (1)", 1))}
        absent = [name for name, n in counts.items() if n == 0]
        if absent:
            raise DataError(f"the held-out rows, {what}, have no {' and no '.join(absent)} label in {label!r} "
                            f"({counts['normal (0)']} normal, {counts['faulty (1)']} faulty): precision and the "
                            f"false-alarm rate need both; hold out rows with both labels", label)
        normal = int((frame.loc[~held, label] == 0).sum())
        if normal < need:
            raise DataError(f"the rows not held out have {normal} normal rows (label 0 in {label!r}); fitting "
                            f"the held-out evaluation's limits needs at least {need}: hold out fewer rows", label)

    # -- the work ----------------------------------------------------------------------------
    def _detector(self) -> Any:
        from .pca_monitor import PCAMonitor, ScoreLimitDetector

        create = self.config["create_model"]
        params = dict(create["params"])
        if create["model_type"] == "PCA":
            return PCAMonitor(rule=self.config["anomaly"]["rule"], **params)
        confidence = params.pop("confidence", None)
        return ScoreLimitDetector(_estimator_class(create["model_type"])(**params), confidence=confidence)

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
            metrics.update(_label_metrics(frame[label], frame["anomaly"]))
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
        import numpy as np
        import pandas as pd

        label = self.config["setup"]["label"]
        held = self._holdout_mask(data)
        rest, test = data[~held], data[held]
        model = self._pipeline(rest[rest[label] == 0], features)
        known = test[label].notna().to_numpy()
        alarm = (model.predict(test[features]) == -1)[known]
        truth = test[label].to_numpy()[known].astype(bool)
        metrics = {f"holdout_{k}": v for k, v in _label_metrics(pd.Series(truth), pd.Series(alarm)).items()}
        first = int(np.argmax(truth))  # both labels are present (validate_data)
        after = np.flatnonzero(alarm[first:])
        if len(after):
            metrics["holdout_detection_delay"] = float(after[0])
        metrics["holdout_rows"] = float(len(truth))
        counts = pd.DataFrame({
            "label": [0, 1],
            "no_alarm": [int((~truth & ~alarm).sum()), int((truth & ~alarm).sum())],
            "alarm": [int((~truth & alarm).sum()), int((truth & alarm).sum())],
        })
        return counts, metrics

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


def _parse_evaluate(section: dict[str, Any], setup: dict[str, Any]) -> dict[str, Any]:
    check_keys(section, ("holdout",), "evaluate")
    holdout = section.get("holdout")
    if isinstance(holdout, str) and holdout:
        for role in ("ds", "label"):
            if setup.get(role) == holdout:
                raise InvalidConfig(f"{holdout!r} is the {role} column; name a boolean column that marks the "
                                    f"held-out rows", "evaluate.holdout")
        if holdout in (setup.get("features") or ()):
            raise InvalidConfig(f"{holdout!r} is listed in setup.features; the holdout column cannot be a "
                                f"feature", "evaluate.holdout")
    elif isinstance(holdout, (int, float)) and not isinstance(holdout, bool) and 0 < holdout < 1:
        holdout = float(holdout)
    else:
        raise InvalidConfig(f"must be a fraction in (0, 1) (the share of rows held out from the end) or the "
                            f"name of a boolean column marking held-out rows; got {holdout!r}", "evaluate.holdout")
    if not setup.get("label"):
        raise InvalidConfig("a held-out evaluation scores alarms against known faults: set setup.label to a "
                            "0/1 column", "evaluate.holdout")
    return {"holdout": holdout}


def _label_metrics(label: pd.Series, flagged: pd.Series) -> dict[str, float]:
    from sklearn.metrics import precision_recall_fscore_support

    known = label.notna()
    truth, alarm = label[known].astype(bool).to_numpy(), flagged[known].to_numpy()
    if len(truth) == 0:
        return {}
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, alarm, average="binary", zero_division=0)
    metrics = {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
    if (~truth).any():
        metrics["false_alarm_rate"] = float(alarm[~truth].mean())
    if truth.any():
        metrics["detection_rate"] = float(alarm[truth].mean())
    return metrics

