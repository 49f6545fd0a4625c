"""Typed errors of the hub.

Every error a caller can act on subclasses :class:`ExperimentHubError` *and* the builtin it
resembles, so plain ``except LookupError`` keeps working. Each carries a message written for a
person: what went wrong, which key / column / name, and what the choices are. The REST layer maps
these classes to status codes in one place; nothing else invents codes.
"""

from __future__ import annotations

from collections.abc import Iterable


class ExperimentHubError(Exception):
    """Base class of every error the hub raises on purpose."""


def _choices(values: Iterable[object]) -> str:
    items = sorted(str(v) for v in values)
    return ", ".join(repr(v) for v in items) if items else "(none)"


class ExperimentNotFound(ExperimentHubError, LookupError):
    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        super().__init__(f"Experiment not found: {name!r}. Known experiments: {_choices(known)}")


class ExperimentExists(ExperimentHubError, ValueError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"Experiment {name!r} already exists; train it again with train({name!r}, ...) "
            f"or delete it first"
        )


class InvalidName(ExperimentHubError, ValueError):
    """An experiment or queue name that cannot be used in URLs, MLflow and queue names."""


class UnknownExperimentType(ExperimentHubError, ValueError):
    def __init__(self, experiment_type: str, known: Iterable[str] = ()) -> None:
        self.experiment_type = experiment_type
        super().__init__(f"Unknown experiment type: {experiment_type}. Available types: {_choices(known)}")


class InvalidConfig(ExperimentHubError, ValueError):
    """The experiment config is malformed; ``key`` is the dotted path of the offending entry."""

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"Invalid config at '{key}': {message}" if key else f"Invalid config: {message}")


class DataError(ExperimentHubError, ValueError):
    """The data cannot be used as given; ``column`` names the offending column when there is one."""

    def __init__(self, message: str, column: str | None = None) -> None:
        self.column = column
        super().__init__(message)


class NoData(DataError):
    """There is no data to train or predict on."""


class NotReady(ExperimentHubError, RuntimeError):
    """The experiment has no trained model yet (still created, failed, or stopped before a fit)."""


class Busy(ExperimentHubError, RuntimeError):
    """The experiment is training; the request would conflict with the running job."""


class PlotNotFound(ExperimentHubError, LookupError):
    def __init__(self, experiment: str, plot_name: str, known: Iterable[str], kind: str = "plot") -> None:
        self.plot_name = plot_name
        super().__init__(
            f"Experiment {experiment!r} has no {kind} named {plot_name!r}. Available: {_choices(known)}"
        )


class RunNotFound(ExperimentHubError, LookupError):
    """No MLflow run (or none usable) for the request."""


class TrainingFailed(ExperimentHubError, RuntimeError):
    """Raised by ``wait`` when the training job ended in ``failed``; the message is the job's error."""


class TrackingError(ExperimentHubError, RuntimeError):
    """The MLflow tracking backend could not be reached or refused the request. ``transient``: the
    store was busy or unreachable (worth retrying), as opposed to refusing the request itself."""

    def __init__(self, message: str, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)


class DatastreamError(ExperimentHubError, RuntimeError):
    """The datastream backend could not be reached or refused the request."""


class GroupsRejected(ExperimentHubError, ValueError):
    """Creating many experiments at once was refused before any started; ``groups`` maps each bad
    group (its experiment name, or its value when it has none) to the reason."""

    def __init__(self, groups: dict[str, str]) -> None:
        self.groups = dict(groups)
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(self.groups.items())[:20])
        more = f" (and {len(self.groups) - 20} more)" if len(self.groups) > 20 else ""
        super().__init__(f"{len(self.groups)} group(s) refused, none created: {listed}{more}")


class LimitExceeded(ExperimentHubError, ValueError):
    """A request goes beyond a configured limit (rows per request, experiments per hub, body size);
    the message names the limit and its setting."""


class UnsafeModel(ExperimentHubError, PermissionError):
    """A stored model was refused because loading it could run code: a pickle format, a flavor
    ExperimentHub does not write, or a skops file holding a type outside ExperimentHub's own list.
    Raised before any byte of the model file is deserialised; the message names the format found
    and what is accepted, ``model_format`` the format alone (e.g. ``"sklearn/pickle"``).

    The REST API answers 403: the request is well formed and the run exists, but the server refuses
    by policy to deserialise what the run holds (the ``trust_pickles`` setting lifts that for
    pickles), which a 422 (a request the client should correct) would misstate."""

    def __init__(self, message: str, model_format: str | None = None) -> None:
        self.model_format = model_format
        super().__init__(message)
