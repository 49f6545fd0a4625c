"""What an experiment's MLflow run holds, and how an experiment is rebuilt from it.

A run's artifacts::

    config.json              the validated config
    learned.json             what the fit learned besides the model (e.g. inferred frequency)
    data/train.parquet       the training data, types preserved
    data/evaluation.parquet  per-row results on the training data
    data/predictions.parquet predictions made since training (written by save)
    evaluation/backtest.parquet  the out-of-sample evaluation's table, when the config asked for one
    model/                   the model in its native MLflow flavor (prophet / sklearn)
    figures/<name>.json      model figures, Plotly JSON (a deferred figure: once it was first built)
    eda/<name>.json          EDA figures, Plotly JSON (likewise)

Tags: ``experimenthub.type``, ``experimenthub.model_type``, ``experimenthub.kind`` (train/retrain).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import model_formats
from .errors import RunNotFound
from .experiments.base import Evaluation

if TYPE_CHECKING:
    import pandas as pd

    from .experiments.base import ExperimentType
    from .plugins.protocols import RunInfo, TrackingPlugin
    from .registry import ExperimentTypeRegistry

log = logging.getLogger(__name__)

TAG_TYPE, TAG_MODEL, TAG_KIND = "experimenthub.type", "experimenthub.model_type", "experimenthub.kind"
#: what a run is for: "model" (an experiment's training; what load, restore and compare take),
#: "sweep" (the parent of a sweep's candidates) or "candidate" (one of them)
TAG_ROLE = "experimenthub.role"
#: on the MLflow experiment: when the hub experiment was deleted (seconds since the epoch); restore
#: skips it unless a model run started after that (the name was created again)
TAG_DELETED = "experimenthub.deleted_at"


def role(run: RunInfo) -> str:
    return run.tags.get(TAG_ROLE, "model")  # runs written before roles existed are model runs


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as parquet (types kept). A column parquet cannot type (mixed values, e.g. numbers
    and text in an unused extra column) is stored as text rather than failing the whole run."""
    import pandas as pd

    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except (TypeError, ValueError):  # pyarrow's ArrowTypeError / ArrowInvalid
        safe = frame.copy()
        for column in safe.columns:
            if safe[column].dtype == object:
                safe[column] = safe[column].map(lambda v: None if pd.isna(v) else str(v))
        buffer = io.BytesIO()
        safe.to_parquet(buffer, index=False)
    return buffer.getvalue()


def start(tracking: TrackingPlugin, name: str, impl: ExperimentType, data: pd.DataFrame, kind: str,
          number: int, tags: dict[str, str] | None = None) -> RunInfo:
    """Open the run and record what goes in: params, config, training data. ``tags`` join ours
    (e.g. the lease naming the process that writes the run)."""
    run = tracking.start_run(name, f"{name}-{kind}-{number}", {
        TAG_TYPE: impl.type_name, TAG_MODEL: impl.config["create_model"]["model_type"], TAG_KIND: kind,
        TAG_ROLE: "model", **(tags or {}),
    })
    try:
        tracking.log_params(run.run_id, impl.tracking_params())
        tracking.log_files(run.run_id, {
            "config.json": json.dumps(impl.config, indent=2, default=str),
            "data/train.parquet": parquet_bytes(data),
        })
    except BaseException:
        abandon(tracking, run.run_id)
        raise
    return run


def abandon(tracking: TrackingPlugin, run_id: str) -> None:
    """End a run that could not be written whole as FAILED (never raises): left RUNNING, it would
    look alive for as long as this process is."""
    try:
        tracking.end_run(run_id, "FAILED")
    except Exception:
        log.warning("could not mark run %s FAILED", run_id, exc_info=True)


def result_files(impl: ExperimentType, evaluation: Evaluation) -> dict[str, bytes | str]:
    """What a fit adds to its run, as files (the model in its flavor, what it learned, the
    evaluation frames): made where the fit ran, so the hub only uploads them."""
    files: dict[str, bytes | str] = {
        "learned.json": json.dumps(impl.learned, default=str),
        "data/evaluation.parquet": parquet_bytes(evaluation.frame),
    }
    if evaluation.backtest is not None:
        files["evaluation/backtest.parquet"] = parquet_bytes(evaluation.backtest)
    with tempfile.TemporaryDirectory(prefix="experimenthub-model-") as tmp:
        folder = Path(tmp, "model")
        impl.save_model(str(folder))
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                files[f"model/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
    return files


def finish(tracking: TrackingPlugin, run_id: str, metrics: dict[str, float], files: dict[str, bytes | str],
           figures: dict[str, str], eda: dict[str, str]) -> None:
    """Record what came out: metrics, the model and evaluation files, figures; then mark FINISHED."""
    tracking.log_metrics(run_id, metrics)
    tracking.log_files(run_id, {
        **files,
        **{f"figures/{k}.json": v for k, v in figures.items()},
        **{f"eda/{k}.json": v for k, v in eda.items()},
    })
    tracking.end_run(run_id, "FINISHED")


def log_figures(tracking: TrackingPlugin, run_id: str, folder: str, figures: dict[str, str]) -> None:
    """Add figures built after the run was written (deferred ones, on first request)."""
    if figures:
        tracking.log_files(run_id, {f"{folder}/{k}.json": v for k, v in figures.items()})


def update(tracking: TrackingPlugin, run_id: str, figures: dict[str, str],
           predictions: pd.DataFrame | None, monitor: dict[str, Any] | None) -> None:
    """``save``: bring the run up to date with predictions and the figures they changed."""
    files: dict[str, bytes | str] = {f"figures/{k}.json": v for k, v in figures.items()}
    if predictions is not None and len(predictions):
        files["data/predictions.parquet"] = parquet_bytes(predictions)
    tracking.log_files(run_id, files)
    if monitor and monitor.get("value") is not None:
        tracking.log_metrics(run_id, {f"monitor_{monitor['metric']}": monitor["value"]})


@dataclasses.dataclass
class Restored:
    run: RunInfo
    impl: ExperimentType
    train_data: pd.DataFrame
    evaluation: Evaluation
    figures: dict[str, str]
    eda: dict[str, str]
    predictions: pd.DataFrame | None
    figure_names: list[str]  # every figure of the experiment, built (above) or deferred
    eda_names: list[str]


def latest_run(tracking: TrackingPlugin, name: str) -> RunInfo:
    for run in tracking.runs(name, finished_only=True):
        if TAG_TYPE in run.tags and role(run) == "model":
            return run
    raise RunNotFound(f"No finished MLflow run for experiment {name!r} at {tracking.uri}; "
                      f"train it first (or pass a run id)")


def restore(tracking: TrackingPlugin, registry: ExperimentTypeRegistry, name: str,
            run_id: str | None, *, trust_pickles: bool = False) -> Restored:
    """Rebuild an experiment from a run. The model is read only in a format that cannot run code
    (:mod:`experimenthub.model_formats`; pickles too with ``trust_pickles``); everything else a run
    holds is data: JSON, parquet (read by pyarrow, which no longer unpickles extension types),
    figures kept as text."""
    import pandas as pd

    run = latest_run(tracking, name) if run_id is None else tracking.get_run(run_id)
    if run.experiment_name != name:
        raise RunNotFound(f"Run {run.run_id} belongs to MLflow experiment {run.experiment_name!r}, "
                          f"not {name!r}; load it as {run.experiment_name!r}")
    if TAG_TYPE not in run.tags:
        raise RunNotFound(f"Run {run.run_id} was not recorded by ExperimentHub (no {TAG_TYPE} tag)")
    if role(run) == "sweep":
        raise RunNotFound(f"Run {run.run_id} is the parent run of a sweep; it holds no model. Load one of its "
                          f"candidates, or the experiment's model run the sweep chose")
    if run.status != "FINISHED":
        raise RunNotFound(f"Run {run.run_id} ended {run.status}, it holds no complete model; "
                          f"load a FINISHED run")
    cls = registry.get(run.tags[TAG_TYPE])
    with tempfile.TemporaryDirectory(prefix="experimenthub-load-") as tmp:
        def fetch(path: str) -> Path | None:
            local = tracking.download(run.run_id, path, tmp)
            return Path(local) if local else None

        def required(path: str) -> Path:
            local = fetch(path)
            if local is None:
                raise RunNotFound(f"Run {run.run_id} has no artifact {path!r}; it was not completed")
            return local

        impl = cls(json.loads(required("config.json").read_text()))
        model = required("model")
        with model_formats.policy(trust_pickles=trust_pickles, model=f"the model of run {run.run_id} ({name!r})"):
            impl.load_model(str(model))
        learned_file = fetch("learned.json")
        learned = json.loads(learned_file.read_text()) if learned_file else {}
        if not isinstance(learned, dict):
            raise RunNotFound(f"Run {run.run_id} has a learned.json that is not a JSON object; it was not "
                              f"written by ExperimentHub")
        impl.learned = learned
        train = pd.read_parquet(required("data/train.parquet"))
        backtest = fetch("evaluation/backtest.parquet")
        evaluation = Evaluation(pd.read_parquet(required("data/evaluation.parquet")),
                                {k: float(v) for k, v in run.metrics.items() if not k.startswith("monitor_")},
                                pd.read_parquet(backtest) if backtest else None)
        predictions_file = fetch("data/predictions.parquet")
        predictions = pd.read_parquet(predictions_file) if predictions_file else None
        figures = _read_folder(fetch("figures"))
        eda = _read_folder(fetch("eda"))
    figure_names = list(cls.figure_names) if cls.figure_names is not None else list(figures)
    eda_names = list(cls.eda_figure_names) if cls.eda_figure_names is not None else list(eda)
    return Restored(run, impl, train, evaluation, figures, eda, predictions, figure_names, eda_names)


def _read_folder(folder: Path | None) -> dict[str, str]:
    if folder is None:
        return {}
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.json"))}
