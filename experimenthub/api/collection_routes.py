"""REST routes over many experiments at once: create one per group, stop or delete a list, the
leaderboard, and restore from the tracking store. Registered before the per-experiment routes;
their first path segments are reserved names (:mod:`.paths`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from ..comparing import to_records
from .deps import HubDep


class CreateMany(BaseModel):
    """The config (the seed's shape) plus the groups: either ``groups`` (name -> records) or
    ``data`` (records of a long table) with ``by`` (the column that tells the groups apart)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "setup": {"target": "value", "ds": "ds"}, "create_model": {"model_type": "Prophet", "params": {}},
        "data": [{"ds": "2024-01-01", "value": 1.0, "store": "Store 1"}], "by": "store", "prefix": "sales_",
    }]})
    groups: dict[str, list[dict[str, Any]] | dict[str, Any]] | None = None
    data: list[dict[str, Any]] | dict[str, Any] | None = None
    by: str | None = None
    prefix: str = ""


class Names(BaseModel):
    names: list[str] = Field(description="experiment names", min_length=1)


def install(app: FastAPI) -> None:
    @app.post("/create_experiments/{experiment_type}", tags=["experiments"],
              summary="Create one experiment per group (all or nothing) and queue their trainings")
    def create_experiments(experiment_type: str, hub: HubDep, body: Annotated[CreateMany, Body()]) -> dict[str, Any]:
        request = body.model_dump(exclude_unset=True)
        groups, data = request.pop("groups", None), request.pop("data", None)
        by, prefix = request.pop("by", None), request.pop("prefix", "")
        made = hub.create_experiments(experiment_type, request, groups if groups is not None else data, by=by,
                                      prefix=prefix)
        names = [e.name for e in made]
        return {"message": f"Creating {len(names)} experiments of type '{experiment_type}'", "names": names}

    @app.post("/stop_training", tags=["training"], summary="Stop the trainings of several experiments")
    def stop_many(hub: HubDep, body: Names) -> dict[str, Any]:
        stopped = hub.stop_training(body.names)
        return {"status": "success", "stopped": stopped}

    @app.post("/delete", tags=["experiments"], summary="Delete several experiments (none if one is unknown)")
    def delete_many(hub: HubDep, body: Names) -> dict[str, Any]:
        hub.delete(body.names)
        return {"status": "success", "deleted": body.names}

    @app.post("/restore", tags=["experiments"],
              summary="Bring back experiments from MLflow (all not deleted, or the named ones); loaded on first use")
    def restore(hub: HubDep, body: Annotated[Names | None, Body()] = None) -> dict[str, Any]:
        names = hub.restore(None if body is None else body.names)
        return {"status": "success", "restored": names}

    @app.get("/compare", tags=["metadata"],
             summary="Leaderboard: each experiment's latest model run (or one experiment's runs), best first")
    def compare(hub: HubDep, names: Annotated[str | None, Query(description="comma-separated names; one name: "
                                                                             "its runs")] = None,
                metric: Annotated[str | None, Query(description="sort best first by this metric")] = None,
                ) -> list[dict[str, Any]]:
        wanted: str | list[str] | None = None
        if names:
            parts = [n.strip() for n in names.split(",") if n.strip()]
            wanted = parts[0] if len(parts) == 1 else parts
        return to_records(hub.compare(wanted, metric))
