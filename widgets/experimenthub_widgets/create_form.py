"""The create form: data, name, experiment type, model type, its parameters and the setup columns,
with the whole config as JSON beside the form.

The column pickers are those the type declares (``ExperimentType.setup_keys``; :mod:`.setup_columns`).
Types that declare no setup keys are set up in the JSON editor.

Beside the anomaly setting (the band of ``time_series``, the ``confidence`` of ``fault_detection``)
the form shows the expected false-alarm rate it gives (:mod:`.false_alarms`).

The form and the JSON editor stay in sync: every form change rewrites the JSON (keeping sections
and parameters the form does not show, e.g. ``forecast``), and a JSON edit that parses updates the
form. The JSON is what Create sends: ``hub.create_experiment(name, type, config, data)``, the same
call ``POST /create_experiment`` makes.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from experimenthub import datasets

from .background import Runner
from .data_source import DataSource
from .false_alarms import AnomalySetting
from .lifecycle import Quiet
from .params_form import ParamsForm
from .setup_columns import SetupColumns, wrap
from .style import esc


def type_class(hub: Any, type_name: str) -> Any:
    """The class registered as experiment type ``type_name`` (``hub.experiment_type``; raises
    ``UnknownExperimentType`` for a name the hub does not know)."""
    return hub.experiment_type(type_name)


class CreateForm(w.VBox):
    def __init__(self, hub: Any, runner: Runner, on_created: Callable[[str], None],
                 on_error: Callable[[str], None], namespace: Mapping[str, Any] | None = None,
                 sample: str | None = "prophet_daily", name: str | None = None) -> None:
        self._hub, self._runner = hub, runner
        self._on_created, self._on_error = on_created, on_error
        self._lock = threading.RLock()
        self._quiet = Quiet()
        self._applied_sample: str | None = None
        self._name_suggested = name is None
        self._config: dict[str, Any] = {"setup": {}, "create_model": {"model_type": "", "params": {}}}

        types = list(hub.available_experiments)
        self.name = w.Text(value=name or "", description="Name", placeholder="letters, digits, _ - .",
                           layout=w.Layout(width="300px"))
        self.name.add_class("eh-create-name")
        self.type = w.Dropdown(options=types, value=types[0] if types else None, description="Type",
                               layout=w.Layout(width="300px"))
        self.type.add_class("eh-create-type")
        self.model = w.Dropdown(options=[], description="Model", layout=w.Layout(width="300px"))
        self.model.add_class("eh-create-model")
        self.source = DataSource("eh-create", namespace, sample)

        #: the setup column pickers; ``pickers`` maps each setup key to its picker (``ds``, ``target``,
        #: ``label``, ``features``, and one made for any other key a type declares, class ``eh-create-<key>``)
        self.columns = SetupColumns(self._quiet, self._lock, self._form_to_json)
        self.ds, self.target, self.label = self.columns.ds, self.columns.target, self.columns.label
        self.features, self.features_hint = self.columns.features, self.columns.features_hint
        self.pickers, self.setup_box = self.columns.pickers, self.columns.box

        self.params = ParamsForm()
        #: the anomaly band's input and the expected false-alarm rate beside the setting
        self.anomaly = AnomalySetting(self.params, self._form_to_json)
        self.json = w.Textarea(value="", rows=14, layout=w.Layout(width="100%"))
        self.json.add_class("eh-create-json")
        self.json_status = w.HTML()
        self.json_status.add_class("eh-create-json-status")
        self.button = w.Button(description="Create and train", button_style="primary", icon="play",
                               layout=w.Layout(width="180px"))
        self.button.add_class("eh-create-button")
        self.note = w.HTML('<span class="eh-muted">Training starts at once; the experiment appears on the '
                           "left.</span>")

        self.params_box = w.Accordion(children=[self.params], titles=("Model parameters",))
        self.params_box.add_class("eh-create-params-box")
        self.json_box = w.Accordion(children=[w.VBox([self.json, self.json_status])],
                                    titles=("Config as JSON (what Create sends)",))
        self.json_box.add_class("eh-create-json-box")
        super().__init__([
            _section("Data"), self.source,
            _section("Experiment"), w.HBox([self.name, self.type, self.model], layout=wrap()),
            _section("Columns"), self.setup_box, self.anomaly.box,
            self.params_box, self.json_box,
            w.HBox([self.button, self.note], layout=w.Layout(align_items="center", margin="8px 0 0 0")),
        ], layout=w.Layout(width="100%", padding="4px"))
        self.add_class("eh-create")

        self.type.observe(self._type_changed, "value")
        self.model.observe(self._model_changed, "value")
        self.params.on_change(self._form_to_json)
        self.json.observe(self._json_changed, "value")
        self.name.observe(self._name_changed, "value")
        self.button.on_click(self._create)
        self.source.on_change(self._data_changed)

        with self._lock:
            if not self._apply_sample():
                self._reset_type(self.type.value)
            self._suggest_name()
        self.source.load_now()

    # -- form <-> JSON ----------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """The config Create would send (the JSON editor's, when it parses)."""
        with self._lock:
            return copy.deepcopy(self._config)

    def _quietly(self, widget: w.Widget, **traits: Any) -> None:
        with self._quiet:
            for key, value in traits.items():
                if getattr(widget, key) != value:
                    setattr(widget, key, value)

    def _form_to_json(self) -> None:
        if self._quiet:
            return
        with self._lock:
            config = copy.deepcopy(self._config)
            create = dict(config.get("create_model") or {})
            create["model_type"] = self.model.value
            old = _sub_dict(create, "params")
            extra = {k: v for k, v in old.items() if k not in self.params.widgets}
            create["params"] = {**extra, **self.params.value}
            config["create_model"] = create
            setup = dict(config.get("setup") or {}) if isinstance(config.get("setup"), dict) else {}
            self.columns.write(setup)
            config["setup"] = setup
            self.anomaly.to_config(config)
            self._config = config
            self._quietly(self.json, value=json.dumps(config, indent=2, default=str))
            self.json_status.value = '<span class="eh-muted">the form and this JSON agree</span>'
            self._show_false_alarms()

    def _json_changed(self, change: dict) -> None:
        if self._quiet:
            return
        try:
            config = json.loads(change["new"])
        except ValueError as exc:
            self.json_status.value = f'<span class="eh-health-detail">not valid JSON: {esc(exc)}</span>'
            return
        if not isinstance(config, dict):
            self.json_status.value = '<span class="eh-health-detail">the config must be a JSON object</span>'
            return
        with self._lock:
            self._config = config
            self._json_to_form(config)
            self._show_false_alarms()
        self.json_status.value = '<span class="eh-muted">valid JSON; the form shows it</span>'

    def _json_to_form(self, config: dict[str, Any]) -> None:
        with self._quiet:
            create = _sub_dict(config, "create_model")
            model_type = create.get("model_type")
            if model_type in self.model.options and model_type != self.model.value:
                self.model.value = model_type
                self._set_param_specs()
            params = _sub_dict(create, "params")
            self.params.set_values(params)
            setup = _sub_dict(config, "setup")
            self.columns.show(setup, keep=True)
            self.anomaly.from_config(config)

    # -- type, model, parameters -----------------------------------------------------------------
    def _type_changed(self, change: dict) -> None:
        if self._quiet:
            return
        with self._lock:
            self._reset_type(change["new"])

    def _reset_type(self, type_name: str | None) -> None:
        """A fresh config for ``type_name`` (a sample's own config when the sample is of that type)."""
        sample = datasets.SAMPLE_CONFIGS.get(self.source.sample.value) if self.source.kind.value == "sample" else None
        if sample is not None and sample[0] == type_name:
            config = copy.deepcopy(sample[1])
        else:
            config = {"setup": {}, "create_model": {"model_type": "", "params": {}}}
        self._set_type(type_name, config)

    def _set_type(self, type_name: str | None, config: dict[str, Any]) -> None:
        with self._quiet:
            if self.type.value != type_name:
                self.type.value = type_name
            models = list(self._models(type_name))
            wanted = config.get("create_model", {}).get("model_type")
            if list(self.model.options) != models:
                self.model.options = models
            self.model.value = wanted if wanted in models else (models[0] if models else None)
            config.setdefault("create_model", {})["model_type"] = self.model.value
            config["create_model"].setdefault("params", {})
            self._config = config
            self._set_param_specs()
            self.params.set_values(config["create_model"]["params"])
            cls = self._type_cls(type_name)
            self.columns.set_type(cls)
            self.anomaly.set_type(cls)
            self.anomaly.from_config(config)
            self.columns.show(config.get("setup") or {}, keep=True)
        self._form_to_json()

    def _type_cls(self, type_name: str | None) -> Any:
        """The class of ``type_name``; None when there is none or the hub does not know it."""
        if not type_name:
            return None
        try:
            return type_class(self._hub, type_name)
        except Exception:
            return None

    def _show_false_alarms(self) -> None:
        """The expected false-alarm rate of the config as it is now (the JSON's when it parses)."""
        self.anomaly.update(self._type_cls(self.type.value), self._config)

    def _models(self, type_name: str | None) -> tuple[str, ...]:
        if not type_name:
            return ()
        try:
            return tuple(type_class(self._hub, type_name).model_types)
        except Exception:
            return ()

    def _set_param_specs(self) -> None:
        specs: list[Any] = []
        if self.type.value and self.model.value:
            try:
                specs = type_class(self._hub, self.type.value).model_parameters(self.model.value)
            except Exception:
                specs = []
        self.params.set_specs(specs)

    def _model_changed(self, change: dict) -> None:
        if self._quiet:
            return
        with self._lock:
            with self._quiet:
                self._set_param_specs()
                create = self._config.setdefault("create_model", {})
                create["model_type"], create["params"] = change["new"], {}
            self._form_to_json()

    # -- data -------------------------------------------------------------------------------------
    def _apply_sample(self) -> bool:
        """The chosen sample's type and config, when it has one. True if applied."""
        if self.source.kind.value != "sample":
            return False
        sample = self.source.sample.value
        if sample == self._applied_sample or sample not in datasets.SAMPLE_CONFIGS:
            return False
        self._applied_sample = sample
        type_name, config = datasets.SAMPLE_CONFIGS[sample]
        if type_name not in self.type.options:
            return False
        self._set_type(type_name, copy.deepcopy(config))
        return True

    def _data_changed(self, frame: Any, error: str | None) -> None:
        """New data chosen (a background thread): offer its columns, apply a sample's config."""
        with self._lock:
            self.columns.frame = frame
            if not self._apply_sample():
                self.columns.show(self._config.get("setup") or {}, keep=False)
                self._form_to_json()
            if self._name_suggested:
                self._suggest_name()

    # -- name ---------------------------------------------------------------------------------------
    def _name_changed(self, change: dict) -> None:
        if not self._quiet:
            self._name_suggested = False

    def suggested_name(self) -> str:
        stem = self.source.sample.value if self.source.kind.value == "sample" else (self.type.value or "experiment")
        stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem)[:100] or "experiment"
        taken = set(self._hub.experiments)
        number = 1
        while f"{stem}-{number}" in taken:
            number += 1
        return f"{stem}-{number}"

    def _suggest_name(self) -> None:
        self._name_suggested = True
        self._quietly(self.name, value=self.suggested_name())

    # -- create -------------------------------------------------------------------------------------
    def _create(self, _button: Any = None) -> None:
        try:
            config = json.loads(self.json.value)
        except ValueError as exc:
            self._on_error(f"The config is not valid JSON: {exc}")
            return
        if not isinstance(config, dict):
            self._on_error("The config must be a JSON object, e.g. {\"setup\": {...}, \"create_model\": {...}}")
            return
        name, type_name = self.name.value.strip(), self.type.value

        def work() -> str:
            data = self.source.frame()
            self._hub.create_experiment(name, type_name, config, data=data)
            return name

        def done(created: str) -> None:
            with self._lock:
                if self._name_suggested or self.name.value.strip() == created:
                    self._suggest_name()
            self._on_created(created)

        self._runner.run("Creating…", work, done=done, button=self.button)


def _sub_dict(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``config[key]`` when it is a dict (a config section), else an empty one."""
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def _section(title: str) -> w.HTML:
    return w.HTML(f'<div style="font-weight:600;margin-top:6px">{esc(title)}</div>')
