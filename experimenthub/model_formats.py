"""Stored models are loaded only in formats that cannot run code.

Anyone who can write to the tracking store (a shared MLflow server) can put a run there that looks
like ours. Loading a run's ``model/`` directory therefore reads its ``MLmodel`` file with
``yaml.safe_load`` first, and refuses with :class:`~experimenthub.errors.UnsafeModel`, before any
byte of the model file is deserialised:

* a flavor other than the one the experiment type writes (``python_function`` alone, another
  library's flavor, a flavor that ships a ``code`` directory);
* for the sklearn flavor, any ``serialization_format`` but ``skops``: ``pickle`` and
  ``cloudpickle`` run code when loaded (MLflow assumes ``pickle`` when the key is missing);
* a skops file holding a node kind or a type outside the experiment type's own allow-list. The
  file's ``schema.json`` is read as JSON and every node checked; ``skops.io.load(trusted=<that
  list>)`` then checks again while it builds the model. The ``skops_trusted_types`` in ``MLmodel``
  are whoever wrote the run's to choose: they are never read (``mlflow.sklearn.load_model`` trusts
  them, so it is not used);
* for the prophet flavor, anything but Prophet's JSON in a plain file of the model directory; it
  is read with ``prophet.serialize.model_from_json`` (``mlflow.prophet.load_model`` is not used:
  it puts a flavor's ``code`` directory on ``sys.path``).

The ``trust_pickles`` setting (off by default) lets pickle and cloudpickle sklearn models through
``mlflow.sklearn.load_model``, with a warning in the log at every load; it changes nothing else.
The caller that knows the setting and the run (``records.restore``) states both with
:func:`policy` around ``ExperimentType.load_model``, whose signature stays ``load_model(path)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import zipfile
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RunNotFound, UnsafeModel

if TYPE_CHECKING:
    from prophet import Prophet

log = logging.getLogger(__name__)

SkopsAllowlist = Mapping[str, frozenset[str]]
"""A skops node kind (the schema's ``__loader__``) -> the ``module.Class`` names allowed for it."""

_MONITOR = "experimenthub.experiments.pca_monitor"
_METRICS = "sklearn.metrics._dist_metrics"

#: Everything the fault_detection models (``Pipeline(StandardScaler, detector)``) hold, and nothing
#: else: found by saving every model type, and LocalOutlierFactor with every algorithm and every
#: metric its trees accept (each stores its tree and distance metric), then listing the nodes of
#: each skops file (``skops.io.get_untrusted_types`` gives the subset skops does not trust by
#: default). ``tests/test_model_security.py`` checks the list against saved models both ways.
FAULT_DETECTION_SKOPS: SkopsAllowlist = {
    "ObjectNode": frozenset({
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        f"{_MONITOR}.PCAMonitor",
        "sklearn.decomposition._pca.PCA",
        f"{_MONITOR}.ScoreLimitDetector",
        "sklearn.ensemble._iforest.IsolationForest",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.covariance._elliptic_envelope.EllipticEnvelope",
        "sklearn.neighbors._lof.LocalOutlierFactor",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
        # the metrics BallTree / KDTree accept by name (not "pyfunc", which holds a Python callable)
        *(f"{_METRICS}.{name}Distance64" for name in (
            "BrayCurtis", "Canberra", "Chebyshev", "Dice", "Euclidean", "Hamming", "Haversine", "Jaccard",
            "Mahalanobis", "Manhattan", "Minkowski", "RogersTanimoto", "RussellRao", "SEuclidean",
            "SokalMichener", "SokalSneath")),
    }),
    "TreeNode": frozenset({"sklearn.tree._tree.Tree"}),  # IsolationForest's trees
    # arrays (saved with numpy's own format, loaded with allow_pickle=False; object arrays as a list
    # of nodes) and numpy scalars
    "NdArrayNode": frozenset({"numpy.ndarray", "numpy.float64", "numpy.int64"}),
    "DictNode": frozenset({"builtins.dict"}),
    "ListNode": frozenset({"builtins.list"}),
    "TupleNode": frozenset({"builtins.tuple"}),
    "JsonNode": frozenset({"builtins.str"}),  # every JSON value (numbers, booleans, None too)
    "TypeNode": frozenset({"builtins.str"}),  # the key type of dicts
}

_SKLEARN_ACCEPTED = ("ExperimentHub loads sklearn models only from MLflow's sklearn flavor with "
                     "serialization_format 'skops', built from its own list of trusted types")
_PROPHET_ACCEPTED = ("ExperimentHub loads Prophet models only from MLflow's prophet flavor: Prophet's "
                     "JSON serialisation in a file of the model directory")
_TRUST_HINT = ("Set trust_pickles (EXPERIMENTHUB_TRUST_PICKLES=true) only if everyone who can write to "
               "this tracking store is trusted: a pickle runs any code it likes when loaded.")


@dataclasses.dataclass(frozen=True)
class LoadPolicy:
    trust_pickles: bool = False
    #: what is being loaded, for messages and the log, e.g. "the model of run 1a2b... ('sales')"
    model: str = ""


_POLICY: ContextVar[LoadPolicy | None] = ContextVar("experimenthub_model_policy", default=None)


def _current() -> LoadPolicy:
    return _POLICY.get() or LoadPolicy()  # outside policy(): strict


@contextlib.contextmanager
def policy(*, trust_pickles: bool, model: str) -> Iterator[None]:
    """Within the block, loaders accept pickles when ``trust_pickles`` and name ``model``."""
    token = _POLICY.set(LoadPolicy(trust_pickles, model))
    try:
        yield
    finally:
        _POLICY.reset(token)


def skops_names(allowed: SkopsAllowlist) -> list[str]:
    """The type names of an allow-list, as ``skops.io.load(trusted=)`` and MLflow's save take them."""
    return sorted(set().union(*allowed.values()))


# -- the sklearn flavor ------------------------------------------------------------------------

def load_sklearn(path: str, allowed: SkopsAllowlist) -> Any:
    """The model of MLflow's sklearn flavor in ``path``, if it is a skops file holding only
    ``allowed`` (or a pickle under a policy that trusts pickles); else :class:`UnsafeModel`."""
    current = _current()
    what = current.model or f"the model in {path}"
    directory = Path(path)
    conf = _flavor(directory, "sklearn", _SKLEARN_ACCEPTED, what)
    fmt = conf.get("serialization_format", "pickle")  # MLflow's own reading of a missing key
    file = _plain_file(directory, conf.get("pickled_model"), "sklearn", what)
    if fmt == "skops":
        _check_skops(file, allowed, what)
        return _load_skops(file, allowed, what)
    if fmt in ("pickle", "cloudpickle"):
        if current.trust_pickles:
            log.warning("Loading %s, an sklearn model stored as %r: trust_pickles is on, so any code it "
                        "holds runs in this process", what, fmt)
            import mlflow.sklearn

            return mlflow.sklearn.load_model(str(directory))
        written = "" if "serialization_format" in conf else " (its MLmodel names no serialization_format)"
        raise UnsafeModel(f"Refused to load {what}: its sklearn flavor is stored as {fmt!r}{written}, a format "
                          f"that runs code when loaded. {_SKLEARN_ACCEPTED}. {_TRUST_HINT}", f"sklearn/{fmt}")
    raise UnsafeModel(f"Refused to load {what}: its sklearn flavor has serialization_format {fmt!r}, which "
                      f"ExperimentHub does not read. {_SKLEARN_ACCEPTED}.", f"sklearn/{fmt}")


def check_sklearn(path: str, allowed: SkopsAllowlist) -> None:
    """Raise :class:`UnsafeModel` unless ``path`` holds a model :func:`load_sklearn` accepts, without
    building it (for the saving side: a model that would be refused must not be recorded)."""
    what = f"the model in {path}"
    directory = Path(path)
    conf = _flavor(directory, "sklearn", _SKLEARN_ACCEPTED, what)
    fmt = conf.get("serialization_format", "pickle")
    if fmt != "skops":
        raise UnsafeModel(f"{what} is stored as {fmt!r}; {_SKLEARN_ACCEPTED}", f"sklearn/{fmt}")
    _check_skops(_plain_file(directory, conf.get("pickled_model"), "sklearn", what), allowed, what)


def skops_nodes(schema: Any) -> set[tuple[str, str]]:
    """``(node kind, module.Class)`` of every node of a skops file's ``schema.json`` (parsed JSON):
    nothing is imported or built. A node is a dict with any of the keys skops reads for one."""
    found: set[tuple[str, str]] = set()
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if {"__loader__", "__module__", "__class__"} & item.keys():
                found.add((str(item.get("__loader__")), f"{item.get('__module__')}.{item.get('__class__')}"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _check_skops(file: Path, allowed: SkopsAllowlist, what: str) -> None:
    try:
        with zipfile.ZipFile(file) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, OSError) as exc:
        raise UnsafeModel(f"Refused to load {what}: its MLmodel says skops, but {file.name} is not a skops file "
                          f"({type(exc).__name__}: {exc}). {_SKLEARN_ACCEPTED}.", "sklearn/unknown") from None
    everything = set().union(*allowed.values())
    outside = sorted(f"{name} ({kind})" for kind, name in skops_nodes(schema)
                     if name not in allowed.get(kind, frozenset())
                     and not (kind == "CachedNode" and name in everything))  # a reference to a node built before
    if outside:
        listed = ", ".join(outside[:20]) + (f" and {len(outside) - 20} more" if len(outside) > 20 else "")
        raise UnsafeModel(f"Refused to load {what}: its skops file holds types outside ExperimentHub's own list "
                          f"for this experiment type: {listed}. {_SKLEARN_ACCEPTED} (the trusted types listed in a "
                          f"run's MLmodel are not used).", "sklearn/skops")


def _load_skops(file: Path, allowed: SkopsAllowlist, what: str) -> Any:
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(file, trusted=skops_names(allowed))
    except UntrustedTypesFoundException as exc:  # skops's own audit, after ours: not expected
        raise UnsafeModel(f"Refused to load {what}: {exc}. {_SKLEARN_ACCEPTED}.", "sklearn/skops") from None
    except Exception as exc:  # a damaged file of allowed types
        raise RunNotFound(f"{what[0].upper()}{what[1:]} could not be read: {type(exc).__name__}: {exc}") from exc


# -- the prophet flavor ------------------------------------------------------------------------

def load_prophet(path: str) -> Prophet:
    """The Prophet model of MLflow's prophet flavor in ``path``, read from its JSON only."""
    what = _current().model or f"the model in {path}"
    directory = Path(path)
    conf = _flavor(directory, "prophet", _PROPHET_ACCEPTED, what)
    file = _plain_file(directory, conf.get("data"), "prophet", what)
    try:
        # MLflow writes json.dumps(model_to_json(model)): a JSON string holding Prophet's JSON
        text = json.loads(file.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise UnsafeModel(f"Refused to load {what}: its prophet flavor's {file.name} is not JSON "
                          f"({type(exc).__name__}). {_PROPHET_ACCEPTED}.", "prophet/unknown") from None
    if not isinstance(text, str):
        raise UnsafeModel(f"Refused to load {what}: its prophet flavor's {file.name} is not the JSON string "
                          f"MLflow writes. {_PROPHET_ACCEPTED}.", "prophet/unknown")
    from prophet.serialize import model_from_json

    try:
        model = model_from_json(text)  # setattr, pandas.read_json, numpy arrays: data only
    except Exception as exc:
        raise RunNotFound(f"{what[0].upper()}{what[1:]} could not be read as a Prophet model: "
                          f"{type(exc).__name__}: {exc}") from exc
    _check_country(model.country_holidays, what)
    return model


def _check_country(country: Any, what: str) -> None:
    """Predicting looks ``country_holidays`` up by name in the holidays package and calls what it
    finds: the name must be one of its country codes, as a config's is."""
    if country is None:
        return
    import holidays

    if not (isinstance(country, str) and country in holidays.list_supported_countries()):
        raise UnsafeModel(f"Refused to load {what}: its country_holidays {country!r} is not a country code of "
                          f"the holidays package.", "prophet/json")


# -- both --------------------------------------------------------------------------------------

def _flavor(directory: Path, flavor: str, accepted: str, what: str) -> dict[str, Any]:
    """The ``flavor`` section of ``directory/MLmodel``, if that is the only flavor (besides the
    ``python_function`` MLflow adds) and ships no code; read with ``yaml.safe_load``."""
    import yaml

    mlmodel = directory / "MLmodel"
    if mlmodel.is_symlink() or not mlmodel.is_file():
        raise UnsafeModel(f"Refused to load {what}: it has no MLmodel file, so its format is unknown. "
                          f"{accepted}.", "unknown")
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise UnsafeModel(f"Refused to load {what}: its MLmodel file is not YAML ({type(exc).__name__}). "
                          f"{accepted}.", "unknown") from None
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    names = sorted(str(name) for name in flavors) if isinstance(flavors, dict) else []
    if not isinstance(flavors, dict) or flavor not in flavors or set(flavors) - {flavor, "python_function"}:
        found = ", ".join(names) or "none"
        raise UnsafeModel(f"Refused to load {what}: its MLmodel has the flavor(s) {found}, not what ExperimentHub "
                          f"writes for this experiment type. {accepted}.", "+".join(names) or "unknown")
    conf = flavors[flavor]
    if not isinstance(conf, dict):
        raise UnsafeModel(f"Refused to load {what}: its MLmodel's {flavor} flavor is not a mapping. {accepted}.",
                          flavor)
    if conf.get("code"):
        raise UnsafeModel(f"Refused to load {what}: its {flavor} flavor ships code ({conf['code']!r}), which "
                          f"ExperimentHub never writes. {accepted}.", f"{flavor}+code")
    return conf


def _plain_file(directory: Path, name: Any, flavor: str, what: str) -> Path:
    """``directory/name``, if ``name`` is a plain file name (no path, no link) of a file there."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UnsafeModel(f"Refused to load {what}: its {flavor} flavor names the model file {name!r}, which is "
                          f"not a plain file name of the model directory.", flavor)
    file = directory / name
    if file.is_symlink():
        raise UnsafeModel(f"Refused to load {what}: its model file {name!r} is a link.", flavor)
    if not file.is_file():
        raise RunNotFound(f"{what[0].upper()}{what[1:]} has no model file {name!r}; it was not completed")
    return file
