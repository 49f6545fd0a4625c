"""Imported once by the worker server, before it forks a child per job: every job then starts with
the libraries loaded *and* exercised. Plotly loads a validator module per trace type on first use,
and Prophet/CmdStanPy set up their backend on the first fit; a rehearsal of each built-in
experiment type (its ``rehearsals()``) here means no job pays that (about 0.2 s per job otherwise)."""

import logging
import warnings

logging.getLogger("cmdstanpy").disabled = True
for _quiet in ("mlflow", "alembic"):
    logging.getLogger(_quiet).setLevel(logging.WARNING)


def _rehearse() -> None:
    from experimenthub import records
    from experimenthub.registry import ExperimentTypeRegistry

    registry = ExperimentTypeRegistry()
    for name in registry.builtin_names():
        cls = registry.get(name)
        for config, data in cls.rehearsals():
            experiment = cls(config)
            frame = experiment.validate_data(data)
            evaluation = experiment.fit(frame, lambda *_: None)
            figures = {**experiment.eda_figures(frame), **experiment.figures(frame, evaluation, None)}
            for figure in figures.values():
                figure.to_json()
            records.result_files(experiment, evaluation)  # the model's MLflow flavor: imports mlflow


try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _rehearse()
except Exception:  # a rehearsal is an optimisation; a real job reports real errors
    logging.getLogger(__name__).debug("worker rehearsal failed", exc_info=True)
