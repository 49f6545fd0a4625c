"""The ``fault_detection`` config: its sections parsed and checked, and the detectors' parameters.

:func:`parse` turns a raw config into the canonical one ``FaultDetectionExperiment`` works from, or
raises :class:`~experimenthub.errors.InvalidConfig` naming the offending key: ``setup`` (with
``target`` as an alias of ``label``), PCA's ``n_components`` and ``confidence``, the other
detectors' own scikit-learn parameters (checked by scikit-learn's parameter validation, without a
fit), the anomaly ``rule`` and the optional ``evaluate.holdout``. :func:`param_specs` lists the
parameters forms offer. scikit-learn is imported inside functions, so importing this module stays
light.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..config import check_keys, choice, number, optional_section, optional_str, parse_common, parse_retrain
from ..errors import InvalidConfig
from .base import ParamSpec

RULES = ("either", "t2", "spe", "both")
MISSING = ("error", "drop", "interpolate")
_ESTIMATOR_MODULES = {"IsolationForest": "sklearn.ensemble", "EllipticEnvelope": "sklearn.covariance",
                      "LocalOutlierFactor": "sklearn.neighbors"}


def estimator_class(model_type: str) -> type:
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


def parse(config: Any, model_types: Iterable[str], retrain_metrics: Iterable[str]) -> dict[str, Any]:
    """The canonical config (a deep copy, every section present and checked)."""
    config = parse_common(config, model_types)
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
        params = estimator_params(create["model_type"], params, key)
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
        config["evaluate"] = parse_evaluate(evaluate, config["setup"])
    config["retrain"] = parse_retrain(config["retrain"], retrain_metrics, "anomaly_rate")
    return config


def estimator_params(model_type: str, params: dict[str, Any], key: str) -> dict[str, Any]:
    """The parameters of a scikit-learn detector (not PCA), checked by scikit-learn, with
    ``confidence`` (default 0.99) unless ``contamination`` is given."""
    estimator = estimator_class(model_type)
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


def parse_evaluate(section: dict[str, Any], setup: dict[str, Any]) -> dict[str, Any]:
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


def param_specs(model_type: str) -> list[ParamSpec]:
    """The parameters forms offer for ``model_type`` (none for a model type this is not)."""
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
