"""The backends a hub uses when none is given: MLflow on the configured URI (the embedded sqlite
file by default) and RabbitMQ when a URL is set, else the in-process datastream."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import Settings
    from .protocols import DatastreamPlugin, TrackingPlugin


def default_tracking(settings: Settings) -> TrackingPlugin:
    from .mlflow_tracking import MlflowTracking

    artifact_root = settings.artifact_root if settings.uses_embedded_tracking else None
    return MlflowTracking(settings.tracking_uri, artifact_root)


def default_datastream(settings: Settings) -> DatastreamPlugin:
    if settings.rabbitmq_url:
        from .rabbitmq_stream import RabbitMQDatastream

        return RabbitMQDatastream(settings.rabbitmq_url)
    from .memory_stream import MemoryDatastream

    return MemoryDatastream()
