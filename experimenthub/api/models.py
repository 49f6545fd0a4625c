"""Request and response bodies of the REST API, for validation and for ``/docs``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CreateModel(BaseModel):
    model_config = ConfigDict(extra="allow")
    model_type: str | None = Field(None, examples=["Prophet"], description="one of the type's model types")
    params: dict[str, Any] | None = Field(None, examples=[{"seasonality_mode": "multiplicative"}])


class ExperimentConfig(BaseModel):
    """The experiment config (the seed's shape). Unknown keys reach the hub, which answers 400
    naming the key and the allowed ones; ``data`` holds inline training records."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "setup": {"target": "value", "ds": "ds"},
        "create_model": {"model_type": "Prophet",
                         "params": {"seasonality_mode": "multiplicative", "daily_seasonality": True}},
    }]})
    setup: dict[str, Any] | None = None
    create_model: CreateModel | None = None
    forecast: dict[str, Any] | None = None
    anomaly: dict[str, Any] | None = None
    retrain: dict[str, Any] | None = None
    evaluate: dict[str, Any] | None = Field(
        None, description="out-of-sample evaluation: time_series {horizon, folds, seasonality}; "
                          "fault_detection {holdout: a fraction from the end, or a boolean column}")
    data: list[dict[str, Any]] | dict[str, Any] | None = Field(
        None, description="training rows: a list of records, or a 'columns'/'split' JSON table")


Table = list[dict[str, Any]] | dict[str, Any]


class Message(BaseModel):
    message: str


class StatusMessage(BaseModel):
    status: str = "success"
    message: str


class ExperimentStatus(BaseModel):
    name: str
    experiment_type: str
    model_type: str
    state: str = Field(description="created, training, ready, failed or stopped")
    stage: str = Field(description="while training: 'queued' (waiting for a free slot), then the job's stages")
    progress: float
    error: str | None
    run_id: str | None
    exp_id: str | None
    started_at: str | None
    ended_at: str | None
    tracking: str | None = Field(description="None, logging, logged or 'failed: ...'")
    metrics: dict[str, float]
    retrain: dict[str, Any] | None
    watching: bool = Field(False, description="streaming mode: predicting each batch arriving on the queue")
    queue_position: int | None = Field(None, description="while stage is 'queued': trainings ahead of this one "
                                                         "(0: it starts next)")
    executor: str | None = Field(None, description="where the training runs: 'local' or a Dask worker's address")


class PluginHealth(BaseModel):
    healthy: bool
    details: dict[str, Any]


class Health(BaseModel):
    mlops: PluginHealth
    datastream: PluginHealth
    executor: PluginHealth | None = Field(None, description="where trainings run: local, or a Dask cluster")


class ExperimentTypeRef(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    module: str
    class_: str = Field(alias="class")


class RunSummary(BaseModel):
    run_id: str
    status: str
    kind: str | None
    start_time: float | None
    end_time: float | None
    metrics: dict[str, float]
