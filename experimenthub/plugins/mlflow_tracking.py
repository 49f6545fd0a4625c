"""MLflow tracking through ``MlflowClient`` with explicit run ids (safe from any thread).

The fluent API keeps its active run per thread and silently opens runs; we never use it. MLflow
is imported on first use (``import mlflow`` takes seconds). Every MLflow or HTTP exception is
translated here into :class:`TrackingError` / :class:`RunNotFound`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import RunNotFound, TrackingError
from ..redact import redact_text, redact_uri
from .protocols import Health, RunInfo

_MAX_PARAM = 6000  # MLflow's limit on a param value is 6000 characters


def _http_defaults() -> None:
    """Fail in seconds, not minutes, when an MLflow server is down. MLflow reads its HTTP retries,
    backoff and timeout from these environment variables and from nowhere else (neither
    MlflowClient nor its REST store takes them as arguments), so this is the hub's one write to
    os.environ; setdefault: a user's own values win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def _no_artifact_progress_bars() -> None:
    """No tqdm bars in notebook cells when artifacts are downloaded (MLflow shows one per download
    of a directory or file, whatever its size). MLflow asks MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR,
    defaulting to true; lowering that default in this process, rather than writing the variable,
    keeps a user's own setting winning and leaves the environment of child processes alone."""
    try:
        from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
    except ImportError:  # renamed in some MLflow: bars are cosmetic
        return
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.default = False


_TRANSIENT_WORDS = (
    "database is locked", "queuepool limit", "connection refused", "connection reset", "connection aborted",
    "max retries exceeded", "timed out", "timeout", "temporarily unavailable", "temporarily_unavailable",
    "too many requests", "resource_exhausted", "service unavailable", "bad gateway", "gateway time",
    "remote end closed", "broken pipe", "could not connect", "server closed the connection",
)
_TRANSIENT_TYPES = ("OperationalError", "TimeoutError", "ConnectionError", "ConnectTimeout", "ReadTimeout",
                    "ChunkedEncodingError", "ProtocolError", "InterfaceError", "DisconnectionError")


def is_transient(exc: BaseException) -> bool:
    """Whether a store error says "busy or unreachable, try again" (a locked sqlite file, an
    exhausted connection pool, a server that is down or restarting) rather than "no"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if type(current).__name__ in _TRANSIENT_TYPES or any(word in text for word in _TRANSIENT_WORDS):
            return True
        code = getattr(current, "error_code", None) or ""
        if code in ("TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"):
            return True
        current = current.__cause__ or current.__context__
    return False


class MlflowTracking:
    def __init__(self, uri: str, artifact_root: str | None = None) -> None:
        self.uri = uri
        self._artifact_root = artifact_root
        self._client_lock = threading.Lock()
        self._client: Any = None
        self._connect_lock = threading.Lock()
        self._connecting: threading.Thread | None = None
        self._connect_error: Exception | None = None  # of the last background connection attempt
        self._ids: dict[str, str] = {}  # MLflow experiment ids by name, as found or created
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if uri.startswith(("http://", "https://")):
            _http_defaults()

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                with self._errors("connect to"):
                    # schema creation/migration logs at INFO from whichever thread gets here first,
                    # which in a notebook lands in an unrelated cell's output
                    for name in ("mlflow.store.db.utils", "alembic.runtime.migration", "alembic"):
                        logging.getLogger(name).setLevel(logging.WARNING)
                    _no_artifact_progress_bars()
                    from mlflow.tracking import MlflowClient

                    client = MlflowClient(tracking_uri=self.uri)
                    client.search_experiments(max_results=1)  # creates / migrates the sqlite schema
                    self._client = client
            return self._client

    def _connected(self, timeout: float) -> bool:
        """Whether the client exists, waiting up to ``timeout`` s while a background thread makes it."""
        if self._client is not None:
            return True
        with self._connect_lock:
            if self._connecting is None or not self._connecting.is_alive():
                self._connecting = threading.Thread(target=self._connect_quietly, daemon=True,
                                                    name="experimenthub-mlflow-connect")
                self._connecting.start()
            thread = self._connecting
        thread.join(timeout)
        return self._client is not None

    def _connect_quietly(self) -> None:
        try:
            self.client  # noqa: B018 - creates it
            self._connect_error = None
        except Exception as exc:  # health reports it; the next real call raises it
            self._connect_error = exc

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (TrackingError, RunNotFound):
            raise
        except Exception as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
                raise RunNotFound(redact_text(f"MLflow at {self.uri}: {exc}")) from exc
            # the URI (and a driver's message quoting it) may carry the store's password
            raise TrackingError(redact_text(f"could not {action} MLflow at {self.uri}: {type(exc).__name__}: {exc}"),
                                transient=is_transient(exc)) from exc

    # -- health ----------------------------------------------------------------------------
    def health(self) -> Health:
        details: dict[str, Any] = {"uri": redact_uri(self.uri)}  # /health is served: never the password
        try:
            if self.uri.startswith(("http://", "https://")):
                import requests

                response = requests.get(self.uri.rstrip("/") + "/health", timeout=2)
                response.raise_for_status()
            else:
                if self._client is None:
                    _probe_database_port(self.uri)  # a database server that is down: say so in 2 s
                if not self._connected(timeout=2):
                    failed = self._connect_error
                    if failed is not None and not (self._connecting and self._connecting.is_alive()):
                        raise failed  # the last attempt failed: unreachable, not starting
                    # MLflow creates (or migrates) the database's schema meanwhile
                    return {"healthy": False, "details": {**details, "status": "starting",
                                                           "error": "creating the MLflow database"}}
                self.client.search_experiments(max_results=1)
        except Exception as exc:  # health reports; it never raises
            return {"healthy": False, "details": {**details, "status": "unreachable",
                                                   "error": redact_text(f"{type(exc).__name__}: {exc}")[:500]}}
        return {"healthy": True, "details": {"status": "connected", **details}}

    # -- experiments and runs --------------------------------------------------------------
    def experiment_id(self, name: str, create: bool = False) -> str | None:
        known = self._ids.get(name)
        if known is not None:
            return known
        found = self._experiment_id(name, create)
        if found is not None:
            self._ids[name] = found  # ids never change; a deleted experiment is restored by the next create
        return found

    def _experiment_id(self, name: str, create: bool) -> str | None:
        with self._errors(f"look up experiment {name!r} in"):
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                if experiment.lifecycle_stage == "deleted":
                    if not create:
                        return None
                    self.client.restore_experiment(experiment.experiment_id)
                return experiment.experiment_id
            if not create:
                return None
            location = f"{self._artifact_root}/{name}" if self._artifact_root else None
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except Exception:
                found = self.client.get_experiment_by_name(name)  # created by a concurrent caller
                if found is None:
                    raise
                return found.experiment_id

    def start_run(self, experiment: str, run_name: str, tags: Mapping[str, str]) -> RunInfo:
        experiment_id = self.experiment_id(experiment, create=True)
        try:
            run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        except Exception:  # deleted (or recreated) behind our back since we learned its id: look again
            self._ids.pop(experiment, None)
            experiment_id = self.experiment_id(experiment, create=True)
            with self._errors(f"start a run of {experiment!r} in"):
                run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        return _info(run, experiment)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), _param_text(v)) for k, v in params.items()]
        with self._errors("log parameters to"):
            for start in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[start:start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, 0) for k, v in metrics.items() if v is not None]
        with self._errors("log metrics to"):
            if items:
                self.client.log_batch(run_id, metrics=items)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        with self._errors("tag a run in"):
            for key, value in tags.items():
                self.client.set_tag(run_id, key, str(value)[:5000])

    def log_files(self, run_id: str, files: Mapping[str, bytes | str]) -> None:
        """Write ``{artifact path: content}`` and upload them in one call."""
        with tempfile.TemporaryDirectory(prefix="experimenthub-") as tmp:
            for rel, content in files.items():
                target = Path(tmp, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, str):
                    target.write_text(content, encoding="utf-8")
                else:
                    target.write_bytes(content)
            with self._errors("upload artifacts to"):
                self.client.log_artifacts(run_id, tmp)

    def log_directory(self, run_id: str, artifact_path: str, write: Callable[[str], None]) -> None:
        """``write(path)`` fills a new directory (e.g. an MLflow model flavor), then it is uploaded."""
        with tempfile.TemporaryDirectory(prefix="experimenthub-") as tmp:
            target = str(Path(tmp, "content"))
            write(target)
            with self._errors("upload artifacts to"):
                self.client.log_artifacts(run_id, target, artifact_path)

    def end_run(self, run_id: str, status: str) -> None:
        with self._errors("end a run in"):
            self.client.set_terminated(run_id, status)

    def get_run(self, run_id: str) -> RunInfo:
        with self._errors(f"read run {run_id!r} from"):
            try:
                run = self.client.get_run(run_id)
            except Exception as exc:
                raise RunNotFound(f"No MLflow run with id {run_id!r} at {redact_uri(self.uri)}") from exc
            experiment = self.client.get_experiment(run.info.experiment_id)
        return _info(run, experiment.name)

    def runs(self, experiment: str, max_results: int = 50, finished_only: bool = False) -> list[RunInfo]:
        """Runs of ``experiment``, newest first (only FINISHED ones with ``finished_only``)."""
        experiment_id = self.experiment_id(experiment)
        if experiment_id is None:
            return []
        with self._errors(f"list runs of {experiment!r} in"):
            found = self.client.search_runs([experiment_id], order_by=["attributes.start_time DESC"],
                                            filter_string="attributes.status = 'FINISHED'" if finished_only else "",
                                            max_results=max_results)
        return [_info(run, experiment) for run in found]

    def experiments(self) -> dict[str, dict[str, str]]:
        """Every active MLflow experiment: name -> its tags."""
        return {name: tags for name, (_, tags) in self._experiment_index().items()}

    def _experiment_index(self) -> dict[str, tuple[str, dict[str, str]]]:
        found: dict[str, tuple[str, dict[str, str]]] = {}
        token = None
        with self._errors("list experiments in"):
            while True:
                page = self.client.search_experiments(max_results=1000, page_token=token)
                for experiment in page:
                    found[experiment.name] = (experiment.experiment_id, dict(experiment.tags))
                token = page.token
                if not token:
                    return found

    def set_experiment_tag(self, name: str, key: str, value: str) -> None:
        """Tag the MLflow experiment ``name`` (nothing when it does not exist)."""
        experiment_id = self.experiment_id(name)
        if experiment_id is not None:
            with self._errors(f"tag experiment {name!r} in"):
                self.client.set_experiment_tag(experiment_id, key, value)

    def find_runs(self, filter_string: str, max_results: int = 100_000) -> list[RunInfo]:
        """Runs of every active experiment matching an MLflow filter string, newest first."""
        index = self._experiment_index()
        names = {experiment_id: name for name, (experiment_id, _) in index.items()}
        ids = list(names)
        out: list[RunInfo] = []
        with self._errors("search runs in"):
            for start in range(0, len(ids), 100):
                token = None
                while len(out) < max_results:
                    page = self.client.search_runs(ids[start:start + 100], filter_string=filter_string,
                                                   order_by=["attributes.start_time DESC"],
                                                   max_results=min(1000, max_results - len(out)), page_token=token)
                    out.extend(_info(run, names[run.info.experiment_id]) for run in page)
                    token = page.token
                    if not token:
                        break
        out.sort(key=lambda run: run.start_time or 0, reverse=True)
        return out

    def download(self, run_id: str, artifact_path: str, destination: str) -> str | None:
        """Local path of the artifact, or None when the run has no such artifact."""
        with self._errors(f"download {artifact_path!r} of run {run_id!r} from"):
            parent = str(Path(artifact_path).parent) if "/" in artifact_path else None
            names = {f.path for f in self.client.list_artifacts(run_id, parent)}
            if artifact_path not in names:
                return None
            return self.client.download_artifacts(run_id, artifact_path, destination)


def _probe_database_port(uri: str) -> None:
    """For a database URI with a host (``postgresql://u:p@host:5432/db``), check that something
    listens on its port (OSError if not); MLflow itself keeps retrying for about a minute."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme.startswith("sqlite") or not parts.hostname:
        return
    default_ports = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
    port = parts.port or default_ports.get(parts.scheme.split("+")[0])
    if port is not None:
        socket.create_connection((parts.hostname, port), timeout=2).close()


def _param_text(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_PARAM]


def _info(run: Any, experiment_name: str) -> RunInfo:
    info = run.info
    return RunInfo(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        experiment_name=experiment_name,
        status=info.status,
        start_time=info.start_time / 1000 if info.start_time else None,
        end_time=info.end_time / 1000 if info.end_time else None,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )
