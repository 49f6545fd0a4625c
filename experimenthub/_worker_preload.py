"""Imported once by the fork server so every training worker starts with these loaded."""

import logging

import numpy  # noqa: F401
import pandas  # noqa: F401
import plotly.graph_objects  # noqa: F401
import sklearn.decomposition
import sklearn.ensemble
import sklearn.preprocessing  # noqa: F401

try:
    import prophet  # noqa: F401

    logging.getLogger("cmdstanpy").disabled = True
except ImportError:  # pragma: no cover - prophet is a dependency; stay usable without it
    pass
