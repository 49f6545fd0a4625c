"""Where data comes from: a sample data set shipped with the package, an uploaded CSV, a DataFrame
variable of the user's namespace, or nothing (the experiment's queue; for predict: the horizon).

Used by the create form (training data) and the predict box. ``frame()`` gives the data (loading
it in the caller's thread: call it from a background thread); ``on_change(callback)`` is told the
new data's columns after each change, loaded in a background thread.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from experimenthub import datasets

from .background import describe_error

SOURCES = {
    "sample": "Sample data",
    "upload": "Upload CSV",
    "variable": "DataFrame variable",
    "queue": "Experiment's queue",
    "none": "No data",
}
HINTS = {
    "queue": "Trains on the messages waiting in the queue named after the experiment (hub.publish(name, df)).",
    "none": "Predicts the next batch in the experiment's queue, or else the configured horizon ahead.",
}


def user_namespace() -> Mapping[str, Any]:
    """The IPython user namespace when running in a kernel, else empty."""
    try:
        from IPython import get_ipython
    except ImportError:
        return {}
    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


def read_csv(content: bytes) -> Any:
    import pandas as pd

    return pd.read_csv(io.BytesIO(content))


def _upload_content(upload: w.FileUpload) -> tuple[str, bytes] | None:
    if not upload.value:
        return None
    item = upload.value[0]
    content = item["content"]
    return item["name"], content.tobytes() if isinstance(content, memoryview) else bytes(content)


class DataSource(w.VBox):
    """``kind`` (ToggleButtons, ``<prefix>-source``), ``sample`` (Dropdown, ``<prefix>-sample``),
    ``upload`` (FileUpload, ``<prefix>-upload``), ``variable`` (Dropdown, ``<prefix>-variable``)."""

    def __init__(self, prefix: str, namespace: Mapping[str, Any] | None = None, sample: str | None = "prophet_daily",
                 sources: tuple[str, ...] = ("sample", "upload", "variable", "queue"),
                 labels: Mapping[str, str] | None = None) -> None:
        self._namespace = namespace
        self._lock = threading.Lock()
        self._generation = 0
        self._cache: dict[Any, Any] = {}
        self._callbacks: list[Callable[[Any, str | None], None]] = []
        names = {**SOURCES, **(labels or {})}
        self.kind = w.ToggleButtons(options=[(names[s], s) for s in sources], value=sources[0],
                                    style={"button_width": "auto"})
        self.kind.add_class(f"{prefix}-source")
        sample_names = datasets.names()
        self.sample = w.Dropdown(options=sample_names, value=sample if sample in sample_names else sample_names[0],
                                 layout=w.Layout(width="260px"))
        self.sample.add_class(f"{prefix}-sample")
        self.sample_info = w.HTML()
        self.sample_info.add_class("eh-muted")
        self.upload = w.FileUpload(accept=".csv,text/csv", multiple=False, description="CSV file")
        self.upload.add_class(f"{prefix}-upload")
        self.variable = w.Dropdown(options=[], layout=w.Layout(width="260px"))
        self.variable.add_class(f"{prefix}-variable")
        self.refresh_variables = w.Button(icon="refresh", tooltip="Look for DataFrames again",
                                          layout=w.Layout(width="36px"))
        self.refresh_variables.on_click(lambda _: self.list_variables())
        self.hint = w.HTML()
        self.hint.add_class("eh-muted")
        self.detail = w.HBox(layout=w.Layout(align_items="center", flex_flow="row wrap"))
        super().__init__([self.kind, self.detail, self.hint], layout=w.Layout(width="100%"))
        for widget in (self.kind, self.sample, self.upload, self.variable):
            widget.observe(self._changed, "value")
        self._show_detail()

    @property
    def namespace(self) -> Mapping[str, Any]:
        return self._namespace if self._namespace is not None else user_namespace()

    def on_change(self, callback: Callable[[Any, str | None], None]) -> None:
        """``callback(columns_frame_or_None, error_or_None)`` after each change (any thread)."""
        self._callbacks.append(callback)

    def list_variables(self) -> None:
        import pandas as pd

        names = sorted(k for k, v in list(self.namespace.items())
                       if isinstance(v, pd.DataFrame) and not k.startswith("_"))
        if list(self.variable.options) != names:
            self.variable.options = names
        if names and self.variable.value is None:
            self.variable.value = names[0]

    # -- the data ---------------------------------------------------------------------------
    def key(self) -> Any:
        kind = self.kind.value
        if kind == "sample":
            return ("sample", self.sample.value)
        if kind == "upload":
            item = self.upload.value[0] if self.upload.value else None
            return ("upload", item["name"], item["size"]) if item else ("upload", None)
        if kind == "variable":
            return ("variable", self.variable.value)
        return (kind,)

    def frame(self) -> Any:
        """The DataFrame (None for the queue / no data). Raises ValueError when nothing is chosen."""
        kind = self.kind.value
        if kind == "sample":
            key = self.key()
            with self._lock:
                cached = self._cache.get(key)
            if cached is None:
                cached = datasets.load(self.sample.value)
                with self._lock:
                    self._cache = {key: cached}
            return cached
        if kind == "upload":
            content = _upload_content(self.upload)
            if content is None:
                raise ValueError("Choose a CSV file to upload first")
            key = self.key()
            with self._lock:
                cached = self._cache.get(key)
            if cached is None:
                try:
                    cached = read_csv(content[1])
                except Exception as exc:
                    raise ValueError(f"Could not read {content[0]!r} as CSV: {exc}") from exc
                with self._lock:
                    self._cache = {key: cached}
            return cached
        if kind == "variable":
            import pandas as pd

            name = self.variable.value
            if not name:
                raise ValueError("No DataFrame variable chosen (define one in a cell, then press refresh)")
            value = self.namespace.get(name)
            if not isinstance(value, pd.DataFrame):
                raise ValueError(f"The variable {name!r} is no longer a DataFrame")
            return value
        return None

    def _changed(self, change: dict) -> None:
        if change["owner"] is self.kind:
            self._show_detail()
        with self._lock:
            self._generation += 1
            generation = self._generation
        threading.Thread(target=self._load, args=(generation,), name="experimenthub-panel-data", daemon=True).start()

    def _load(self, generation: int) -> None:
        try:
            frame, error = self.frame(), None
        except Exception as exc:
            frame, error = None, describe_error(exc)
        with self._lock:
            if generation != self._generation:
                return  # the user chose something else meanwhile
        if self.kind.value == "sample":
            self.sample_info.value = datasets.DESCRIPTIONS.get(self.sample.value, "")
        if frame is not None:
            self.hint.value = f"{len(frame):,} rows × {len(frame.columns)} columns"
        elif error:
            self.hint.value = error
        for callback in self._callbacks:
            callback(frame, error)

    def load_now(self) -> None:
        """Load the current choice in a background thread and tell the callbacks."""
        self._changed({"owner": None})

    def _show_detail(self) -> None:
        kind = self.kind.value
        if kind == "sample":
            children: tuple = (self.sample, self.sample_info)
            self.sample_info.value = datasets.DESCRIPTIONS.get(self.sample.value, "")
        elif kind == "upload":
            children = (self.upload,)
        elif kind == "variable":
            self.list_variables()
            children = (self.variable, self.refresh_variables)
        else:
            children = ()
        self.detail.children = children
        if kind in HINTS:
            self.hint.value = HINTS[kind]
