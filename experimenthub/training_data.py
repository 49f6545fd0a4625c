"""Where a training's data comes from, checked before any job starts.

``data`` given by the caller (a DataFrame or records), else records inline in the config
(``config["data"]``, not kept in the stored config), else the datastream queue named after the
experiment (a Batch settled when the training ends), else the experiment's previous data. The
frame is validated by the experiment type and held to the ``max_rows`` limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import queued
from .errors import InvalidConfig, LimitExceeded, NoData
from .tables import to_frame

if TYPE_CHECKING:
    import pandas as pd

    from .experiments.base import ExperimentType
    from .plugins.protocols import Batch, DatastreamPlugin


def build(cls: type[ExperimentType], config: Any) -> tuple[ExperimentType, Any]:
    """The type instance for ``config`` (validated), and the inline ``data`` records it carried."""
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise InvalidConfig(f"the config must be a mapping (JSON object), got {type(config).__name__}")
    config = dict(config)
    inline = config.pop("data", None)
    return cls(config), inline


def check_rows(frame: pd.DataFrame, max_rows: int, what: str) -> pd.DataFrame:
    if len(frame) > max_rows:
        raise LimitExceeded(f"{what} has {len(frame)} rows; at most {max_rows} are accepted per experiment and "
                            f"request (setting max_rows, EXPERIMENTHUB_MAX_ROWS)")
    return frame


def resolve(datastream: DatastreamPlugin, name: str, type_instance: ExperimentType, data: Any, inline: Any,
            fallback: pd.DataFrame | None, max_rows: int) -> tuple[pd.DataFrame, Batch | None]:
    """The validated training frame and the queue batch it came from (None if not from a queue)."""
    if data is not None:
        frame = check_rows(to_frame(data, "data"), max_rows, "the data")
    elif inline is not None:
        frame = check_rows(to_frame(inline, "config 'data'"), max_rows, "config 'data'")
    else:
        batch = datastream.drain(name)
        if batch is not None:
            return queued.training_frame(type_instance, batch), batch
        if fallback is None:
            raise NoData(f"No training data for {name!r}: pass data (a DataFrame or records), put records "
                         f"under config 'data', or publish them to the queue {name!r}")
        frame = fallback
    return type_instance.validate_data(frame), None
