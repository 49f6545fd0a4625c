"""ExperimentHub: one hub object in the kernel; widgets, REST and cells drive the same experiments.

``import experimenthub`` is light: MLflow, Prophet and scikit-learn load when first needed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .errors import (
    Busy,
    DataError,
    DatastreamError,
    ExperimentExists,
    ExperimentHubError,
    ExperimentNotFound,
    GroupsRejected,
    InvalidConfig,
    InvalidName,
    LimitExceeded,
    NoData,
    NotReady,
    PlotNotFound,
    RunNotFound,
    TrackingError,
    TrainingFailed,
    UnknownExperimentType,
    UnsafeModel,
)

if TYPE_CHECKING:
    from .experiment import Experiment, Status
    from .experiments.base import ExperimentType
    from .faces import ExperimentHub
    from .hub import Hub
    from .settings import Settings

__version__ = "0.1.0"

# A library does not print: without logging configured by the application, our warnings (often
# from background threads, which in a notebook land in whatever cell is running) stay silent.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "ExperimentHub": ("experimenthub.faces", "ExperimentHub"),
    "Hub": ("experimenthub.hub", "Hub"),
    "Experiment": ("experimenthub.experiment", "Experiment"),
    "Status": ("experimenthub.experiment", "Status"),
    "ExperimentType": ("experimenthub.experiments.base", "ExperimentType"),
    "Settings": ("experimenthub.settings", "Settings"),  # pydantic-settings takes ~0.1 s to import
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'experimenthub' has no attribute {name!r}")


__all__ = [
    "Busy", "DataError", "DatastreamError", "Experiment", "ExperimentExists", "ExperimentHub",
    "ExperimentHubError", "ExperimentNotFound", "ExperimentType", "GroupsRejected", "Hub", "InvalidConfig",
    "InvalidName", "LimitExceeded", "NoData",
    "NotReady", "PlotNotFound", "RunNotFound", "Settings", "Status", "TrackingError", "TrainingFailed",
    "UnknownExperimentType", "UnsafeModel", "__version__",
]
