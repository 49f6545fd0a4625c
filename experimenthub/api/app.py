"""The FastAPI app over a hub: every endpoint of the seed document, plus status, predictions and runs.

Each handler is one hub call and a response; the hub reaches handlers through a dependency, errors
through :mod:`experimenthub.api.errors`. Handlers are plain ``def`` so FastAPI runs them in its
thread pool: a hub call that does I/O never blocks the event loop.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from .. import __version__
from ..errors import NotReady
from ..hub import Hub
from ..tables import to_records
from . import errors
from .models import (
    ExperimentConfig,
    ExperimentStatus,
    ExperimentTypeRef,
    Health,
    Message,
    RunSummary,
    StatusMessage,
    Table,
)

DESCRIPTION = """The ExperimentHub API drives the experiments of a live hub (a notebook kernel, or
`experimenthub serve`): create, train, predict, save, load, stop and delete them, and read their
figures as Plotly JSON. Errors carry a `detail`: 400 invalid request (unknown experiment type,
malformed JSON, invalid config or data), 401 missing token, 403 a run's model stored in a format
that could run code when loaded (refused), 404 unknown experiment/plot/run, 409 busy or no trained
model yet, 422 request body of the wrong shape, 503 MLflow or the datastream unreachable. 204:
nothing to return yet."""


def create_app(hub: Hub, token: str | None = None) -> FastAPI:
    app = FastAPI(title="ExperimentHub API", version=__version__, description=DESCRIPTION)
    app.state.hub = hub
    errors.install(app)
    if token:
        _require_token(app, token)
    _routes(app)
    return app


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


HubDep = Annotated[Hub, Depends(get_hub)]
Config = Annotated[ExperimentConfig | None, Body(description="the experiment config")]


def _config(body: ExperimentConfig | None) -> dict[str, Any]:
    return {} if body is None else body.model_dump(exclude_unset=True, by_alias=True)


def _text(text: str) -> PlainTextResponse:
    return PlainTextResponse(text)


def _routes(app: FastAPI) -> None:
    @app.get("/health", response_model=Health, tags=["health"], summary="Health of all plugins")
    def health(hub: HubDep) -> dict[str, Any]:
        return hub.health()

    @app.get("/available_experiments", response_model=dict[str, ExperimentTypeRef], tags=["health"],
             summary="Registered experiment types")
    def available_experiments(hub: HubDep) -> dict[str, Any]:
        return hub.available_experiments

    @app.post("/flush/{queue}", tags=["data"], summary="Empty a queue", response_class=PlainTextResponse)
    def flush(queue: str, hub: HubDep) -> PlainTextResponse:
        hub.flush(queue)
        return _text("Rabbit flushed")

    @app.post("/publish/{queue}", response_model=StatusMessage, tags=["data"],
              summary="Send rows to a queue (one message), e.g. the training data of experiment {queue}")
    def publish(queue: str, hub: HubDep,
                rows: Annotated[Table, Body(description="records or a JSON table")]) -> dict[str, str]:
        count = hub.publish(queue, rows)
        return {"status": "success", "message": f"Published {count} rows to queue {queue}"}

    @app.post("/create_experiment/{name}/{experiment_type}", response_model=Message, tags=["experiments"],
              summary="Create an experiment and start training it in the background")
    def create_experiment(name: str, experiment_type: str, hub: HubDep, config: Config = None) -> dict[str, str]:
        hub.create_experiment(name, experiment_type, _config(config))
        return {"message": f"Creating experiment '{name}' of type '{experiment_type}'"}

    @app.get("/experiments", response_model=dict[str, list[list[str]]], tags=["metadata"],
             summary="Experiment names with their model and EDA figure names")
    def experiments(hub: HubDep) -> dict[str, list[list[str]]]:
        out = {}
        for name in hub.experiments:
            try:
                model_figures, eda_figures = hub.plot_names(name)
            except LookupError:  # deleted meanwhile
                continue
            out[name] = [model_figures, eda_figures]
        return out

    @app.post("/{name}/train", response_model=Message, tags=["training"],
              summary="Train again (a new run) with the sent config and/or data")
    def train(name: str, hub: HubDep, config: Config = None) -> dict[str, str]:
        body = _config(config)
        if set(body) <= {"data"}:  # only new data (or nothing): keep the current config
            hub.train(name, None, data=body.get("data"))
        else:
            hub.train(name, body)
        return {"message": "Training started based on sent parameters."}

    @app.post("/{name}/retrain", tags=["training"], summary="Retrain (a new run) on the data seen so far",
              response_class=PlainTextResponse)
    def retrain(name: str, hub: HubDep) -> PlainTextResponse:
        hub.retrain(name)
        return _text("Retraining started as requested.")

    @app.post("/{name}/stop_training", response_model=StatusMessage, tags=["training"],
              summary="Stop the running training (the experiment stays, in state 'stopped')")
    def stop_training(name: str, hub: HubDep) -> dict[str, str]:
        if hub.stop_training(name):
            return {"status": "success", "message": f"Training for experiment {name} stopped successfully"}
        return {"status": "success", "message": f"Experiment {name} was not training; nothing to stop"}

    @app.post("/{name}/kill", response_model=StatusMessage, tags=["training"], deprecated=True,
              summary="[DEPRECATED] Legacy endpoint. Use /{name}/stop_training instead.")
    def kill(name: str, hub: HubDep) -> dict[str, str]:
        hub.stop_training(name)
        return {"status": "success", "message": f"Experiment {name} training stopped successfully"}

    @app.post("/{name}/delete", response_model=StatusMessage, tags=["experiments"],
              summary="Remove an experiment from memory (its MLflow runs stay)")
    def delete(name: str, hub: HubDep) -> dict[str, str]:
        hub.delete(name)
        return {"status": "success", "message": f"Experiment {name} deleted successfully"}

    @app.post("/{name}/load", tags=["experiments"], summary="Load the latest finished MLflow run",
              response_class=PlainTextResponse)
    def load(name: str, hub: HubDep) -> PlainTextResponse:
        hub.load(name)
        return _text("Experiment loaded")

    @app.post("/{name}/load/{run_id}", tags=["experiments"], summary="Load an MLflow run by id",
              response_class=PlainTextResponse)
    def load_run(name: str, run_id: str, hub: HubDep) -> PlainTextResponse:
        hub.load(name, run_id)
        return _text("Experiment loaded")

    @app.post("/{name}/save", tags=["experiments"], summary="Bring the MLflow run up to date",
              response_class=PlainTextResponse)
    def save(name: str, hub: HubDep) -> PlainTextResponse:
        hub.save(name)
        return _text("Experiment saved")

    @app.post("/{name}/predict", tags=["prediction"], summary="Predict on sent rows, the queue's next batch, "
              "or (time_series) the configured horizon ahead; results at GET /{name}/predictions",
              response_class=PlainTextResponse)
    def predict(name: str, hub: HubDep,
                rows: Annotated[Table | None, Body(description="rows to predict on (records or a JSON "
                                                               "table)")] = None) -> PlainTextResponse:
        hub.predict(name, rows)
        return _text("Prediction called")

    @app.post("/{name}/watch", response_model=StatusMessage, tags=["prediction"],
              summary="Streaming mode: predict every batch arriving on the experiment's queue")
    def watch(name: str, hub: HubDep) -> dict[str, str]:
        started = hub.watch(name)
        return {"status": "success",
                "message": f"Watching queue {name}" if started else f"Already watching queue {name}"}

    @app.post("/{name}/unwatch", response_model=StatusMessage, tags=["prediction"],
              summary="Leave streaming mode")
    def unwatch(name: str, hub: HubDep) -> dict[str, str]:
        hub.status(name)  # 404 for an unknown experiment
        stopped = hub.unwatch(name)
        return {"status": "success", "message": f"Stopped watching queue {name}" if stopped
                else f"Queue {name} was not watched"}

    @app.get("/{name}/predictions", tags=["prediction"], summary="Every prediction since the last training",
             responses={204: {"description": "no predictions yet"}})
    def predictions(name: str, hub: HubDep) -> Response:
        frame = hub.predictions(name)
        if frame is None:
            return Response(status_code=204)
        return JSONResponse(to_records(frame))

    @app.get("/{name}/plot/{plot_name}", tags=["figures"], summary="A model figure as Plotly JSON")
    def plot(name: str, plot_name: str, hub: HubDep) -> Response:
        return Response(hub.plot_json(name, plot_name), media_type="application/json")

    @app.get("/{name}/plot_eda/{plot_name}", tags=["figures"], summary="An EDA figure as Plotly JSON")
    def plot_eda(name: str, plot_name: str, hub: HubDep) -> Response:
        return Response(hub.plot_eda_json(name, plot_name), media_type="application/json")

    @app.get("/{name}/train_data", tags=["data"], summary="The training data as records",
             responses={204: {"description": "no training data yet"}})
    def train_data(name: str, hub: HubDep) -> Response:
        try:
            frame = hub.train_data(name)
        except NotReady:
            return Response(status_code=204)
        return JSONResponse(to_records(frame))

    @app.get("/{name}/cfg", tags=["metadata"], summary="The experiment's config")
    def cfg(name: str, hub: HubDep) -> dict[str, Any]:
        return hub.cfg(name)

    @app.get("/{name}/status", response_model=ExperimentStatus, tags=["training"],
             summary="State, stage, progress (0..1), error, run ids, metrics")
    def status(name: str, hub: HubDep) -> dict[str, Any]:
        return hub.status(name).to_dict()

    @app.get("/{name}/runs", response_model=list[RunSummary], tags=["metadata"],
             summary="MLflow runs of this experiment, newest first")
    def runs(name: str, hub: HubDep) -> list[dict[str, Any]]:
        return [{"run_id": r.run_id, "status": r.status, "kind": r.tags.get("experimenthub.kind"),
                 "start_time": r.start_time, "end_time": r.end_time, "metrics": dict(r.metrics)}
                for r in hub.runs(name)]

    @app.get("/{name}/run_id", tags=["metadata"], summary="The MLflow run id", response_class=PlainTextResponse,
             responses={204: {"description": "no run yet"}})
    def run_id(name: str, hub: HubDep) -> Response:
        run = hub.status(name).run_id
        return Response(status_code=204) if run is None else _text(run)

    @app.get("/{name}/exp_id", tags=["metadata"], summary="The MLflow experiment id", response_class=PlainTextResponse,
             responses={204: {"description": "no MLflow experiment yet"}})
    def exp_id(name: str, hub: HubDep) -> Response:
        experiment = hub.status(name).exp_id
        return Response(status_code=204) if experiment is None else _text(experiment)


def _require_token(app: FastAPI, token: str) -> None:
    expected = token.encode()

    # the interactive docs stay reachable: their page fetches the schema without the token
    open_paths = {app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url}

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Response:
        if request.url.path in open_paths:
            return await call_next(request)
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), expected):
            return JSONResponse({"detail": "Missing or wrong token: send 'Authorization: Bearer <token>' "
                                           "(or ?token=<token>)"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)
