"""Real data sets shipped with the package (provenance and licenses in SOURCES.md).

>>> from experimenthub import datasets
>>> sorted(datasets.names())[:2]
['jfk_weather_hourly_2013', 'prophet_daily']
>>> len(datasets.load("prophet_daily"))
510
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DESCRIPTIONS = {
    "prophet_daily": "510 daily values (Prophet's own test data): a time_series sample",
    "seattle_temps_hourly_2010": "8,759 hourly Seattle temperatures (NOAA normals): a time_series sample",
    "jfk_weather_hourly_2013": "8,706 hourly weather observations at JFK airport, 2013",
    "tep_normal_train": "Tennessee Eastman Process, 500 samples of normal operation (52 variables)",
    "tep_normal_test": "Tennessee Eastman Process, 960 samples of normal operation, column 'fault' = 0",
    "tep_idv01_test": "Tennessee Eastman Process, fault IDV(1) from sample 160 on (column 'fault')",
}

#: for each sample, a config that trains on it as shipped
SAMPLE_CONFIGS = {
    "prophet_daily": ("time_series", {"setup": {"target": "y", "ds": "ds"},
                                      "create_model": {"model_type": "Prophet", "params": {}}}),
    "seattle_temps_hourly_2010": ("time_series", {"setup": {"target": "temp_f", "ds": "ds"},
                                                  "create_model": {"model_type": "Prophet", "params": {}},
                                                  "forecast": {"horizon": 48}}),
    "jfk_weather_hourly_2013": ("time_series", {"setup": {"target": "temp_f", "ds": "ds"},
                                                "create_model": {"model_type": "Prophet", "params": {}},
                                                "forecast": {"horizon": 48}}),
    "tep_normal_train": ("fault_detection", {"setup": {"ds": "ds"},
                                             "create_model": {"model_type": "PCA", "params": {}}}),
}


def names() -> list[str]:
    return list(DESCRIPTIONS)


def path(name: str) -> str:
    if name not in DESCRIPTIONS:
        raise KeyError(f"no data set {name!r}; choices: {', '.join(DESCRIPTIONS)}")
    return str(resources.files(__name__) / f"{name}.csv")


def load(name: str) -> pd.DataFrame:
    """The data set as a DataFrame, with ``ds`` parsed to timestamps."""
    import pandas as pd

    return pd.read_csv(path(name), parse_dates=["ds"])
