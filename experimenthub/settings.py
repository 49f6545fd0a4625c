"""One settings object for the hub: constructor arguments > environment > YAML file > defaults.

Environment variables (prefix ``EXPERIMENTHUB_``)::

    EXPERIMENTHUB_HOME            data directory (default ./.experimenthub, made absolute)
    EXPERIMENTHUB_MLFLOW_URI      MLflow tracking URI (falls back to MLFLOW_TRACKING_URI, then the
                                  embedded sqlite file HOME/mlflow.db)
    EXPERIMENTHUB_RABBITMQ_URL    amqp:// URL; unset = the in-process datastream
    EXPERIMENTHUB_EXPERIMENT_TYPES  comma-separated allowlist of enabled experiment types
    EXPERIMENTHUB_FREEZE_GC       "false" keeps gc.freeze() out of warm-up and serve()
    EXPERIMENTHUB_CONFIG          path of a YAML file with the same keys in lower case

The YAML file may hold ``home``, ``mlflow_uri``, ``rabbitmq_url``, ``experiment_types``,
``server_host`` and ``server_port``. Settings are passed to the hub, never read from a global.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import InvalidConfig

_ENV_PREFIX = "EXPERIMENTHUB_"
_FIELDS = ("home", "mlflow_uri", "rabbitmq_url", "experiment_types", "server_host", "server_port", "freeze_gc")


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path = Path(".experimenthub")
    mlflow_uri: str | None = None
    rabbitmq_url: str | None = None
    experiment_types: tuple[str, ...] | None = None  # None: every registered type
    server_host: str = "127.0.0.1"
    server_port: int = 8010
    #: after warm-up (and after serve()), move the long-lived objects of the imported libraries out of
    #: the garbage collector's scans (gc.freeze): full collections otherwise stall every thread, the
    #: REST server's included, for up to 0.2 s in a kernel with MLflow and Prophet loaded
    freeze_gc: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().resolve())
        if isinstance(self.experiment_types, str):
            object.__setattr__(self, "experiment_types", _split(self.experiment_types))
        elif self.experiment_types is not None:
            object.__setattr__(self, "experiment_types", tuple(self.experiment_types))
        if isinstance(self.freeze_gc, str):
            object.__setattr__(self, "freeze_gc", self.freeze_gc.strip().lower() not in ("0", "false", "no", "off"))
        try:
            object.__setattr__(self, "server_port", int(self.server_port))
        except (TypeError, ValueError) as exc:
            raise InvalidConfig(f"not a port number: {self.server_port!r}", "server_port") from exc

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI actually used: the setting, or the embedded absolute sqlite file."""
        if self.mlflow_uri:
            return self.mlflow_uri
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        """Where the embedded store keeps artifacts (only used with the default sqlite store)."""
        return (self.home / "artifacts").as_uri()

    @property
    def uses_embedded_tracking(self) -> bool:
        return not self.mlflow_uri

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``overrides`` (non-None wins), then ``env``, then the YAML file."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        config_file = overrides.pop("config_file", None) or env.get(_ENV_PREFIX + "CONFIG")
        if config_file:
            values.update(_read_yaml(Path(config_file)))
        for field in _FIELDS:
            raw = env.get(_ENV_PREFIX + field.upper())
            if raw:
                values[field] = raw
        if "mlflow_uri" not in values and env.get("MLFLOW_TRACKING_URI"):
            values["mlflow_uri"] = env["MLFLOW_TRACKING_URI"]
        unknown = set(overrides) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}; known: {list(_FIELDS)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise InvalidConfig(f"cannot read settings file {path}: {exc}", "EXPERIMENTHUB_CONFIG") from exc
    except yaml.YAMLError as exc:
        raise InvalidConfig(f"settings file {path} is not valid YAML: {exc}", "EXPERIMENTHUB_CONFIG") from exc
    if not isinstance(data, dict):
        raise InvalidConfig(f"settings file {path} must hold a mapping", "EXPERIMENTHUB_CONFIG")
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise InvalidConfig(
            f"unknown keys {sorted(unknown)} in {path}; known keys: {list(_FIELDS)}", "EXPERIMENTHUB_CONFIG"
        )
    return data
