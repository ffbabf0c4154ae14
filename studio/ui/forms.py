"""UI values <-> config, matched by config field name, in one place.

Every form widget is made here from its dataclass field: the default, the help line as ``info``,
choices and ranges. ``Form`` keeps ``"section.name" -> component``; handlers take the widgets as a
set and get ``{component: value}``, which ``to_config`` turns into a ``StudioConfig`` (so no handler
takes thirty positional values). ``values_of(config)`` goes the other way for presets and YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from studio.config import ConfigError, StudioConfig, setting
from studio.engine.train.defaults import SMALL

# Sensible slider ranges; other numbers get a Number box with a lower bound.
RANGES = {"data.val_size": (0.0, 0.5, 0.01), "data.max_length": (32, 8192, 32), "method.lora_r": (1, 256, 1),
          "method.lora_dropout": (0.0, 0.5, 0.01), "train.warmup_ratio": (0.0, 0.5, 0.01),
          "train.batch_size": (1, 128, 1), "train.grad_accum": (1, 128, 1)}
LABELS = {"method.kind": "Method", "method.objective": "Objective", "model.name": "Base model"}
TAB_OF = {"data": "Data", "model": "Model", "method": "Model", "train": "Model", "eval": "Compare"}


def to_widget(key: str, value):
    """Config value -> what the widget shows (dicts and lists become text)."""
    if key == "data.columns":
        return ", ".join(f"{k}={v}" for k, v in (value or {}).items())
    if key in ("method.target_modules", "eval.extra_metrics") and isinstance(value, list):
        return ", ".join(value)
    return value


def from_widget(key: str, value):
    """Widget value -> config value; the config's own checks judge it afterwards."""
    if key == "data.columns":
        pairs = [p.strip() for p in (value or "").split(",") if p.strip()]
        bad = [p for p in pairs if "=" not in p]
        if bad:
            raise ValueError(f"data.columns: write studio_name=file_column pairs, got {bad[0]!r}")
        return {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in pairs)}
    if key == "method.target_modules":
        text = (value or "").strip()
        return text if text in ("auto", "all-linear") else [t.strip() for t in text.split(",") if t.strip()]
    if key == "eval.extra_metrics":
        return [t.strip() for t in (value or "").split(",") if t.strip()]
    if key in ("method.reward_model", "model.name") and value is None:  # an emptied dropdown
        return ""
    return value


def make(key: str, **overrides) -> gr.components.Component:
    """The widget for ``section.name``, with its default, help line, choices and range."""
    s = setting(*key.split("."))
    kw = {"label": LABELS.get(key, key.split(".")[1].replace("_", " ")), "info": s.help,
          "value": to_widget(key, s.default), "elem_id": key.replace(".", "-")}
    kw.update(overrides)
    if s.choices and s.type is list:
        return gr.CheckboxGroup(choices=list(s.choices), **kw)
    if s.choices:
        return gr.Dropdown(choices=list(s.choices), **kw)
    if s.type is bool:
        return gr.Checkbox(**kw)
    if key in RANGES:
        lo, hi, step = RANGES[key]
        return gr.Slider(minimum=lo, maximum=hi, step=step, **kw)
    if s.type in (int, float):  # the schema's lower bound (a strict one too: the check then says why)
        return gr.Number(minimum=s.minimum, precision=0 if s.type is int else None, **kw)
    return gr.Textbox(**kw)


@dataclass
class Form:
    """All config widgets of the app, by ``section.name``."""
    widgets: dict[str, gr.components.Component] = field(default_factory=dict)

    def add(self, key: str, **overrides) -> gr.components.Component:
        self.widgets[key] = make(key, **overrides)
        return self.widgets[key]

    def add_all(self, section: str, names: list[str]) -> list[gr.components.Component]:
        return [self.add(f"{section}.{n}") for n in names]

    @property
    def inputs(self) -> set:
        return set(self.widgets.values())

    @property
    def components(self) -> list:
        return list(self.widgets.values())

    def to_config(self, values: dict) -> StudioConfig:
        """``{component: value}`` (a handler's set input) -> a validated config; a bad setting is named by its
        label and tab, as the page shows it."""
        raw = StudioConfig().to_dict()
        for key, comp in self.widgets.items():
            if comp in values:
                section, name = key.split(".")
                raw[section][name] = from_widget(key, values[comp])
        try:
            return StudioConfig.from_dict(raw)
        except ConfigError as e:
            raise ConfigError(self.in_ui_words(str(e))) from None

    def in_ui_words(self, message: str) -> str:
        """``train.learning_rate must be > 0`` -> ``"learning rate" (Model tab) must be > 0``."""
        for key in sorted(self.widgets, key=len, reverse=True):
            if key in message:
                label = self.widgets[key].label or key
                return message.replace(key, f'"{label}" ({TAB_OF[key.split(".")[0]]} tab)', 1)
        return message

    def set_values(self, values: dict) -> None:
        """Initial widget values (section -> key -> value), before the page is served."""
        for section, fields in values.items():
            for name, value in fields.items():
                key = f"{section}.{name}"
                if key in self.widgets:
                    self.widgets[key].value = to_widget(key, value)

    def updates(self, values: dict) -> dict:
        """``{component: value}`` for the given section -> key -> value settings."""
        return {self.widgets[f"{s}.{n}"]: to_widget(f"{s}.{n}", v) for s, fields in values.items()
                for n, v in fields.items() if f"{s}.{n}" in self.widgets}

    def values_of(self, config: StudioConfig) -> dict:
        """``{component: value}`` to fill every widget from ``config``."""
        raw = config.to_dict()
        return {comp: to_widget(key, raw[key.split(".")[0]][key.split(".")[1]]) for key, comp in self.widgets.items()}


SMALL_PRESET = "small model: learns in about a minute on a CPU"
PRESETS = {
    SMALL_PRESET: SMALL,
    "quick test": {"method": {"kind": "lora", "lora_r": 8, "lora_alpha": 16, "target_modules": "all-linear"},
                   "train": {"max_steps": 30, "epochs": 1.0, "batch_size": 4, "grad_accum": 1,
                             "learning_rate": 1e-3, "logging_steps": 1, "eval_steps": 10,
                             "gradient_checkpointing": False}},
    "LoRA": {"method": {"kind": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                        "target_modules": "all-linear"},
             "train": {"max_steps": 0, "epochs": 3.0, "batch_size": 8, "grad_accum": 1, "learning_rate": 2e-4,
                       "scheduler": "cosine", "warmup_ratio": 0.05, "gradient_checkpointing": False}},
    "QLoRA low memory": {"method": {"kind": "qlora", "quant_bits": 4, "quant_type": "nf4", "double_quant": True,
                                    "lora_r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
                         "train": {"max_steps": 0, "epochs": 2.0, "batch_size": 1, "grad_accum": 8,
                                   "learning_rate": 2e-4, "gradient_checkpointing": True}},
}


def apply_preset(config: StudioConfig, name: str) -> StudioConfig:
    raw = config.to_dict()
    for section, values in PRESETS[name].items():
        raw[section].update(values)
    return StudioConfig.from_dict(raw)
