"""REST routes of evaluation: an experiment's out-of-sample table, and sweeps of its parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI
from pydantic import BaseModel, Field

from ..comparing import to_records
from .deps import HubDep


class SweepRequest(BaseModel):
    params: list[dict[str, Any]] | dict[str, list[Any]] = Field(
        description="parameter sets: a list of dicts, or a grid (name -> list of values: every combination)",
        examples=[{"changepoint_prior_scale": [0.01, 0.1, 0.5], "seasonality_mode": ["additive", "multiplicative"]}])
    metric: str | None = Field(None, description="rank by this metric (default: cv_mape for time_series, "
                                                 "holdout_f1 for labelled fault_detection)")


def install(app: FastAPI) -> None:
    @app.get("/{name}/evaluation", tags=["evaluation"],
             summary="Out-of-sample evaluation: per fold and horizon step (time_series) or confusion counts")
    def evaluation(name: str, hub: HubDep) -> list[dict[str, Any]]:
        return to_records(hub.evaluation(name))

    @app.post("/{name}/sweep", tags=["evaluation"],
              summary="Fit every parameter set (in parallel), rank them, keep the best as the model")
    def sweep(name: str, hub: HubDep, body: Annotated[SweepRequest, Body()]) -> dict[str, str]:
        hub.sweep(name, body.params, body.metric)
        return {"message": f"Sweep of experiment {name} started"}

    @app.get("/{name}/sweep", tags=["evaluation"], summary="The candidates of the latest sweep, best first")
    def sweep_candidates(name: str, hub: HubDep) -> list[dict[str, Any]]:
        return to_records(hub.sweep_candidates(name))
