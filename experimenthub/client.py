"""A Python client for the ExperimentHub REST API, with the seed document's method names.

>>> client = ExperimentHubClient("http://127.0.0.1:8010")      # doctest: +SKIP
>>> client.create_experiment("sales", "time_series", config)   # doctest: +SKIP
>>> client.wait_until_ready("sales")["state"]                  # doctest: +SKIP
'ready'

Unlike the seed's sketch, a 4xx/5xx answer raises :class:`APIError` with the server's ``detail``.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from .errors import ExperimentHubError


class APIError(ExperimentHubError, RuntimeError):
    def __init__(self, status_code: int, detail: str, url: str) -> None:
        self.status_code, self.detail, self.url = status_code, detail, url
        super().__init__(f"{status_code} from {url}: {detail}")


class ExperimentHubClient:
    def __init__(self, base_url: str = "http://localhost:8010", token: str | None = None,
                 timeout: float = 60.0, token_header: str = "Authorization", token_scheme: str = "Bearer",
                 hub_token: str | None = None) -> None:
        """``token``: sent as ``Authorization: Bearer <token>``, or, with
        ``token_header="X-ExperimentHub-Token"``, in that header. Never in the URL: the server
        refuses ``?token=``.

        Behind a Jupyter server, through ``<server>/proxy/<port>/`` (``hub.serve().proxy_url``): pass
        the Jupyter server's token with ``token_scheme="token"`` (``Authorization: token <T>``, which
        the Jupyter server checks and the hub accepts too). ``hub_token``: the hub's own token as
        well, in ``X-ExperimentHub-Token``, for a hub served with a token of its own under a Jupyter
        server whose token it does not know (JupyterHub)."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            authorization = token_header.lower() == "authorization"
            self.session.headers[token_header] = f"{token_scheme} {token}" if authorization else token
        if hub_token:
            self.session.headers["X-ExperimentHub-Token"] = hub_token
        self._authenticated = bool(token or hub_token)

    def __repr__(self) -> str:
        return f"ExperimentHubClient({self.base_url!r}, authenticated={self._authenticated})"

    # -- plumbing ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise APIError(response.status_code, str(detail), url)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

    def _text(self, method: str, path: str, **kwargs: Any) -> str:
        return self._request(method, path, **kwargs).text

    def _text_or_none(self, method: str, path: str, **kwargs: Any) -> str | None:
        """For the endpoints that answer 204 (nothing yet) instead of text."""
        response = self._request(method, path, **kwargs)
        return None if response.status_code == 204 else response.text

    # -- the seed's methods ----------------------------------------------------------------
    def check_health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def get_available_experiments(self) -> dict[str, Any]:
        return self._json("GET", "/available_experiments")

    def create_experiment(self, name: str, experiment_type: str, config: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/create_experiment/{name}/{experiment_type}", json=config)

    def train(self, name: str, config: dict[str, Any] | None = None) -> str:
        return self._json("POST", f"/{name}/train", json=config)["message"]

    def predict(self, name: str, rows: list[dict[str, Any]] | dict[str, Any] | None = None) -> str:
        return self._text("POST", f"/{name}/predict", json=rows)

    def retrain(self, name: str) -> str:
        return self._text("POST", f"/{name}/retrain")

    def load(self, name: str, run_id: str | None = None) -> str:
        return self._text("POST", f"/{name}/load/{run_id}" if run_id else f"/{name}/load")

    def save(self, name: str) -> str:
        return self._text("POST", f"/{name}/save")

    def stop_training(self, name: str) -> dict[str, Any]:
        return self._json("POST", f"/{name}/stop_training")

    def delete(self, name: str) -> dict[str, Any]:
        return self._json("POST", f"/{name}/delete")

    def get_plot(self, name: str, plot_name: str) -> dict[str, Any]:
        return self._json("GET", f"/{name}/plot/{plot_name}")

    def get_eda_plot(self, name: str, plot_name: str) -> dict[str, Any]:
        return self._json("GET", f"/{name}/plot_eda/{plot_name}")

    def get_experiments(self) -> dict[str, list[list[str]]]:
        return self._json("GET", "/experiments")

    def flush(self, queue: str) -> str:
        return self._text("POST", f"/flush/{queue}")

    def train_data(self, name: str) -> list[dict[str, Any]] | None:
        return self._json("GET", f"/{name}/train_data")

    def cfg(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/{name}/cfg")

    def run_id(self, name: str) -> str | None:
        return self._text_or_none("GET", f"/{name}/run_id")

    def exp_id(self, name: str) -> str | None:
        return self._text_or_none("GET", f"/{name}/exp_id")

    # -- additions ---------------------------------------------------------------------------
    def status(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/{name}/status")

    def predictions(self, name: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/{name}/predictions") or []

    def runs(self, name: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/{name}/runs")

    def wait_until_ready(self, name: str, timeout: float = 600.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll the status until training ends; raise APIError-free ``TimeoutError`` or
        ``RuntimeError`` (failed) so scripts stop where the problem is."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(name)
            if status["state"] not in ("created", "training"):
                if status["state"] == "failed":
                    raise RuntimeError(f"Training of {name!r} failed: {status['error']}")
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name!r} still {status['state']} after {timeout} s")
            time.sleep(poll)
