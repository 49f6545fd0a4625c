"""One settings object for the hub: constructor arguments > environment > YAML file > defaults.

Built on pydantic-settings by :meth:`Settings.from_env`, which reads only the mapping it is given
(``os.environ`` by default) and turns every problem into :class:`InvalidConfig` naming the key and
where its value came from. Environment variables (prefix ``EXPERIMENTHUB_``; empty ones count as
unset; lists are comma-separated; booleans take true/false, 1/0, yes/no, on/off)::

    EXPERIMENTHUB_HOME              data directory (default ./.experimenthub, made absolute)
    EXPERIMENTHUB_MLFLOW_URI        MLflow tracking URI; unset: the YAML key mlflow_uri, then
                                    MLFLOW_TRACKING_URI, then the embedded sqlite file HOME/mlflow.db
    EXPERIMENTHUB_RABBITMQ_URL      amqp:// URL; unset = the in-process datastream
    EXPERIMENTHUB_EXPERIMENT_TYPES  allowlist of enabled experiment types (unset = every registered type)
    EXPERIMENTHUB_SERVER_HOST       REST API address (default 127.0.0.1)
    EXPERIMENTHUB_SERVER_PORT       REST API port (default 8010; 0 = any free port)
    EXPERIMENTHUB_FREEZE_GC         false keeps gc.freeze() out of warm-up and serve() (default true)
    EXPERIMENTHUB_MAX_TRAININGS     trainings running at once, >= 1; the rest queue (default: CPU count;
                                    on Dask, the cluster's worker threads)
    EXPERIMENTHUB_EXECUTOR          where trainings run: local (default) or dask
    EXPERIMENTHUB_DASK_ADDRESS      the dask scheduler's address (executor dask; unset: a loopback
                                    cluster of this machine's cores, started and closed with the hub)
    EXPERIMENTHUB_TRACKING_WRITERS  threads writing to MLflow, >= 1 (default: chosen automatically)
    EXPERIMENTHUB_DEFER_FIGURES     build a training's figures off its critical path (default true)
    EXPERIMENTHUB_TOKEN             the REST API's bearer token (never shown by repr or str)
    EXPERIMENTHUB_TOKEN_FILE        a file holding the token (stripped); given, it wins over TOKEN
    EXPERIMENTHUB_ALLOWED_HOSTS     Host header values the REST API accepts (default: none configured)
    EXPERIMENTHUB_ALLOWED_ORIGINS   browser origins allowed cross-origin requests (default: none)
    EXPERIMENTHUB_TRUST_PICKLES     accept pickled models and data (default false)
    EXPERIMENTHUB_MAX_BODY_BYTES    largest request body, >= 1 (default 100 MiB)
    EXPERIMENTHUB_MAX_ROWS          rows per experiment per request, >= 1 (default 10,000,000)
    EXPERIMENTHUB_MAX_EXPERIMENTS   experiments a hub holds, >= 1 (default 10,000)
    EXPERIMENTHUB_ALLOW_UNAUTHENTICATED  serve the REST API without a token (default false)
    EXPERIMENTHUB_CONFIG            path of a YAML file with the same keys in lower case

The YAML file maps those keys (``home``, ``mlflow_uri``, ..., without the prefix) to values; an
unknown key is an error and a null value counts as unset. Settings are passed to the hub, never
read from a global.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from .errors import InvalidConfig
from .redact import redact_text, redact_uri

_ENV_PREFIX = "EXPERIMENTHUB_"
_CONFIG_VAR = _ENV_PREFIX + "CONFIG"
_MLFLOW_VAR = "MLFLOW_TRACKING_URI"  # MLflow's own variable: the fallback after our env var and YAML key
_SECRET_KEYS = frozenset({"token"})
_REDACTED_KEYS = ("mlflow_uri", "rabbitmq_url", "dask_address")

#: a tuple read from a comma-separated variable; NoDecode stops pydantic-settings parsing it as JSON
CommaList = Annotated[tuple[str, ...], NoDecode]


def _cpu_count() -> int:
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """The hub's settings, immutable; build them with :meth:`from_env`."""

    model_config = SettingsConfigDict(env_prefix=_ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid",
                                      validate_default=True)

    home: Path = Path(".experimenthub")
    mlflow_uri: str | None = None
    rabbitmq_url: str | None = None
    experiment_types: CommaList | None = None  # None: every registered type
    server_host: str = "127.0.0.1"
    server_port: int = Field(8010, ge=0, le=65535)
    #: after warm-up (and after serve()), move the long-lived objects of the imported libraries out of
    #: the garbage collector's scans (gc.freeze): full collections otherwise stall every thread, the
    #: REST server's included, for up to 0.2 s in a kernel with MLflow and Prophet loaded
    freeze_gc: bool = True
    max_trainings: int = Field(default_factory=_cpu_count, ge=1)
    executor: Literal["local", "dask"] = "local"
    dask_address: str | None = None
    tracking_writers: int | None = Field(None, ge=1)  # None: automatic
    defer_figures: bool = True
    token_file: Path | None = None  # before token: read into it when given
    token: SecretStr | None = None
    allowed_hosts: CommaList = ()
    allowed_origins: CommaList = ()
    trust_pickles: bool = False
    max_body_bytes: int = Field(100 * 1024 * 1024, ge=1)
    max_rows: int = Field(10_000_000, ge=1)
    max_experiments: int = Field(10_000, ge=1)
    max_sweep_candidates: int = Field(500, ge=1)  # a grid of a few bytes can name millions of fits
    allow_unauthenticated: bool = False

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @field_validator("experiment_types", "allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("token", mode="after")
    @classmethod
    def _not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("the token is blank; unset it, or set a real one")
        return token

    @model_validator(mode="before")
    @classmethod
    def _token_from_file(cls, data: Any) -> Any:
        """Given ``token_file``, the token is the file's stripped content."""
        path = data.get("token_file") if isinstance(data, dict) else None
        if not isinstance(path, str | os.PathLike) or not str(path):
            return data  # unset, or not a path: the field's own validation reports it
        path = Path(path).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _KeyedError("token_file", f"cannot read the token file {path}: {exc}") from None
        if not token:
            raise _KeyedError("token_file", f"the token file {path} is empty")
        return {**data, "token": token}

    @property
    def api_token(self) -> str | None:
        """The REST API's token in clear, or None when none is configured."""
        return None if self.token is None else self.token.get_secret_value()

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

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:  # repr() and str(); the token is a SecretStr
        for name, value in super().__repr_args__():
            yield name, redact_uri(value) if name in _REDACTED_KEYS else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build settings from ``overrides`` (non-None wins), then ``env``, then the YAML file.

        ``env`` defaults to ``os.environ``; given, it is the only environment read. ``config_file``
        (or ``EXPERIMENTHUB_CONFIG``) names the YAML file.
        """
        env = os.environ if env is None else env
        config_file = overrides.pop("config_file", None) or env.get(_CONFIG_VAR) or None
        unknown = set(overrides) - set(cls.model_fields)
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}; known: {list(cls.model_fields)}")
        given = {key: value for key, value in overrides.items() if value is not None}
        sources = _Sources(cls, env, config_file, given)
        building = _BUILDING.set(sources)  # read by settings_customise_sources during this call
        try:
            return cls(**given)
        except ValidationError as exc:
            raise sources.invalid(exc) from None  # not chained: the error's inputs may hold the token
        finally:
            _BUILDING.reset(building)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The arguments, then the sources :meth:`from_env` set up; ``Settings(...)`` called directly
        reads ``os.environ`` and its YAML file the same way (its errors stay pydantic's)."""
        sources = _BUILDING.get() or _Sources(settings_cls, os.environ, os.environ.get(_CONFIG_VAR) or None, {})
        return (init_settings, *sources.in_order)


#: the sources of the from_env call running in this thread (or task), for settings_customise_sources
_BUILDING: ContextVar[_Sources | None] = ContextVar("experimenthub_settings_sources", default=None)


class _KeyedError(ValueError):
    """A model-level validator's error about one key (pydantic gives those no location)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _MappingEnvSource(EnvSettingsSource):
    """The environment source reading one given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env  # before super().__init__, which loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key if self.case_sensitive else key.lower(): value for key, value in self._env.items()
                if not (self.env_ignore_empty and value == "")}


class _YamlSource(YamlConfigSettingsSource):
    """The YAML file: one that is missing, unreadable, not a mapping or has unknown keys is an error
    (pydantic-settings itself skips a missing file); a null value counts as unset."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self.path = path.expanduser()
        self._known = list(settings_cls.model_fields)  # before super().__init__, which reads the file
        if not self.path.is_file():
            raise InvalidConfig(f"settings file {self.path} does not exist or is not a file", _CONFIG_VAR)
        super().__init__(settings_cls, yaml_file=self.path)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        import yaml

        try:
            data = yaml.safe_load(file_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidConfig(f"cannot read settings file {file_path}: {exc}", _CONFIG_VAR) from exc
        except yaml.YAMLError as exc:
            raise InvalidConfig(f"settings file {file_path} is not valid YAML: {exc}", _CONFIG_VAR) from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise InvalidConfig(f"settings file {file_path} must hold a mapping, not {type(data).__name__}",
                                _CONFIG_VAR)
        unknown = sorted(str(key) for key in data if key not in self._known)
        if unknown:
            raise InvalidConfig(f"unknown keys {unknown} in {file_path}; known keys: {self._known}", unknown[0])
        return {key: value for key, value in data.items() if value is not None}


class _Sources:
    """The sources of one build below the arguments, highest precedence first, and where a key's
    value came from."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str], config_file: str | None,
                 arguments: Mapping[str, Any]) -> None:
        self.arguments = arguments
        self.env = _MappingEnvSource(settings_cls, env)
        self.yaml = _YamlSource(settings_cls, Path(config_file)) if config_file else None
        fallback = {"mlflow_uri": env[_MLFLOW_VAR]} if env.get(_MLFLOW_VAR) else {}
        self.mlflow_fallback = InitSettingsSource(settings_cls, init_kwargs=fallback)
        files = (self.yaml,) if self.yaml is not None else ()
        self.in_order: tuple[PydanticBaseSettingsSource, ...] = (self.env, *files, self.mlflow_fallback)

    def origin(self, key: str | None) -> str:
        if key is None:
            return "the settings"
        if key in self.arguments:
            return "the argument"
        if key in self.env():
            return _ENV_PREFIX + key.upper()
        if self.yaml is not None and key in self.yaml():
            return str(self.yaml.path)
        if key in self.mlflow_fallback():
            return _MLFLOW_VAR
        return "the default"

    def invalid(self, exc: ValidationError) -> InvalidConfig:
        """One :class:`InvalidConfig` for every problem in ``exc``, keyed by the first one's key."""
        problems: list[str] = []
        first_key: str | None = None
        for error in exc.errors(include_url=False):
            cause = (error.get("ctx") or {}).get("error")
            key = str(error["loc"][0]) if error["loc"] else getattr(cause, "key", None)
            first_key = first_key or key
            message = str(cause) if isinstance(cause, _KeyedError) else error["msg"].removeprefix("Value error, ")
            shown = "" if not error["loc"] or key in _SECRET_KEYS else f"; got {redact_text(repr(error['input']))}"
            problems.append(f"{key} from {self.origin(key)}: {message}{shown}")
        return InvalidConfig("; ".join(problems), first_key)
