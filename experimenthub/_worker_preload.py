"""Imported once by the worker server, before it forks a child per job: every job then starts with
the libraries loaded *and* exercised. Plotly loads a validator module per trace type on first use,
and Prophet/CmdStanPy set up their backend on the first fit; a small rehearsal of both experiment
types here means no job pays that (about 0.2 s per job otherwise)."""

import logging
import warnings

logging.getLogger("cmdstanpy").disabled = True


def _rehearse() -> None:
    import numpy as np
    import pandas as pd

    from experimenthub.experiments.fault_detection import FaultDetectionExperiment
    from experimenthub.experiments.time_series import TimeSeriesExperiment

    rng = np.random.default_rng(0)

    def series(periods: int, freq: str) -> pd.DataFrame:  # long enough for every seasonality to switch on
        stamps = pd.date_range("2020-01-01", periods=periods, freq=freq)
        return pd.DataFrame({"ds": stamps, "y": np.sin(np.arange(periods) / 5) + rng.normal(0, 0.1, periods)})

    stamps = pd.date_range("2020-01-01", periods=60, freq="D")
    table = pd.DataFrame(rng.normal(size=(60, 16)), columns=list("abcdefghijklmnop")).assign(ds=stamps)
    for cls, data, model_type in ((TimeSeriesExperiment, series(800, "D"), "Prophet"),
                                  (TimeSeriesExperiment, series(24 * 15, "h"), "Prophet"),
                                  (FaultDetectionExperiment, table, "PCA"),
                                  (FaultDetectionExperiment, table, "IsolationForest")):
        experiment = cls({"create_model": {"model_type": model_type, "params": {}}})
        frame = experiment.validate_data(data)
        evaluation = experiment.fit(frame, lambda *_: None)
        figures = {**experiment.eda_figures(frame), **experiment.figures(frame, evaluation, None)}
        for figure in figures.values():
            figure.to_json()


try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _rehearse()
except Exception:  # a rehearsal is an optimisation; a real job reports real errors
    logging.getLogger(__name__).debug("worker rehearsal failed", exc_info=True)
