"""The FastAPI app over a hub: every endpoint of the seed document, plus status, predictions and runs.

Each handler is one hub call and a response; the hub reaches handlers through a dependency, errors
through :mod:`experimenthub.api.errors`. Handlers are plain ``def`` so FastAPI runs them in its
thread pool: a hub call that does I/O never blocks the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer

from .. import __version__
from ..errors import InvalidConfig, NotReady
from ..hub import Hub
from ..redact import redact_text
from ..tables import to_records
from . import collection_routes, errors, evaluation_routes
from .deps import HubDep
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
from .security import TOKEN_HEADER, BodyLimit, Guard, ProxyPrefix

DESCRIPTION = """The ExperimentHub API drives the experiments of a live hub (a notebook kernel, or
`experimenthub serve`): create, train, predict, save, load, stop and delete them, and read their
figures as Plotly JSON. Errors carry a `detail`: 400 invalid request (unknown experiment type,
malformed JSON, invalid config or data), 401 missing or wrong token (send it as
`Authorization: Bearer <token>` or `X-ExperimentHub-Token: <token>`, never in the URL), 403 a
foreign Host without the token, a cross-site request from a web page, or a run's model stored in a
format that could run code when loaded (refused), 404 unknown
experiment/plot/run, 409 busy or no trained model yet, 413 request body above the limit
(`EXPERIMENTHUB_MAX_BODY_BYTES`), 422 request body of the wrong shape, 503 MLflow or the datastream
unreachable. 204: nothing to return yet."""


def create_app(hub: Hub, token: str | None = None, jupyter_token: str | None = None) -> FastAPI:
    """The app over ``hub``. ``token`` (default: the hub's setting ``api_token``) is then required
    in a header on every path but the docs; ``hub.settings`` gives ``allowed_hosts``,
    ``allowed_origins`` and ``max_body_bytes`` (see :mod:`experimenthub.api.security`).
    ``jupyter_token``: the token of the Jupyter server the kernel runs under, accepted like ``token``
    (for requests through its ``/proxy/<port>/``; see :class:`~experimenthub.api.security.Guard`)."""
    settings = hub.settings
    token = token or settings.api_token
    if "*" in settings.allowed_origins:
        raise InvalidConfig("'*' would let every web page act on the kernel; list the origins "
                            "(scheme://host:port) that may call the API", "allowed_origins")
    # with a token, the docs page gets an "Authorize" button that sends it as a Bearer header
    security = [Security(HTTPBearer(auto_error=False, description="the hub's token"))] if token else None
    app = FastAPI(title="ExperimentHub API", version=__version__, description=DESCRIPTION, dependencies=security)
    app.state.hub = hub
    errors.install(app)
    collection_routes.install(app)  # before /{name}/...: fixed first segments win
    evaluation_routes.install(app)
    _routes(app)
    # add_middleware puts the last one outermost: ProxyPrefix, CORS (preflights), Guard, then BodyLimit
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    open_paths = {app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url}
    app.add_middleware(Guard, token=token, allowed_hosts=settings.allowed_hosts, jupyter_token=jupyter_token,
                       allowed_origins=settings.allowed_origins, open_paths={p for p in open_paths if p})
    if settings.allowed_origins:  # exactly these origins, never a wildcard
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.allowed_origins),
                           allow_methods=["GET", "POST"], allow_credentials=False,
                           allow_headers=["Authorization", TOKEN_HEADER, "Content-Type"])
    app.add_middleware(ProxyPrefix)  # root_path under jupyter-server-proxy: links only (see its docstring)
    return app


Config = Annotated[ExperimentConfig | None, Body(description="the experiment config")]


def _config(body: ExperimentConfig | None) -> dict[str, Any]:
    return {} if body is None else body.model_dump(exclude_unset=True, by_alias=True)


def _redacted(value: Any) -> Any:
    """Every string in a JSON-like value with URI passwords masked."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _text(text: str) -> PlainTextResponse:
    return PlainTextResponse(text)


def _routes(app: FastAPI) -> None:
    @app.get("/health", response_model=Health, tags=["health"], summary="Health of all plugins")
    def health(hub: HubDep) -> dict[str, Any]:
        return _redacted(hub.health())  # the plugins redact their URIs; this catches any other message

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
