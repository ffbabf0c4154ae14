"""Defaults that fit the model: one rule for the CLI and the UI.

Contract: ``defaults_for(model) -> Defaults``: for a small base model (studio-tiny, or under
``SMALL_PARAMS`` parameters) settings that visibly learn the bundled samples on a 2-core CPU in about a
minute; for hub-sized models the practitioner defaults of ``config.py`` (LoRA r 16, LR 2e-4, ...).
``with_defaults(raw)`` fills the keys a config file does not set, so a YAML with only ``data.path``
trains exactly as pressing Start with the form untouched; keys the file sets always win.
The numbers are measured: docs/benchmarks.md, "The first run".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from studio.config import StudioConfig
from studio.engine import methods
from studio.engine.tiny import TINY_NAME

SMALL_PARAMS = 50_000_000

# Measured on studio-tiny and chat.jsonl (bench/first_run.py): LoRA learns the task in ~70 steps at 2e-3.
SMALL = {"method": {"kind": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
                    "target_modules": "all-linear"},
         "train": {"epochs": 5.0, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.05},
         "data": {"max_length": 256}}
SMALL_REASON = ("a small base model ({params}): LoRA r 16 on every linear layer at learning rate 2e-3 for 5 epochs, "
                "batch 8, so it visibly learns a few hundred examples in about a minute on a CPU")
HUB_REASON = ("a hub-sized base model ({params}): the practitioner defaults (LoRA r 16, learning rate 2e-4, "
              "1 epoch, batch 4); the small-model settings would be unstable here")


@dataclass
class Defaults:
    values: dict  # section -> key -> value, the same keys for every profile
    reason: str
    small: bool


def _practitioner() -> dict:
    """The dataclass defaults for the keys the small profile sets."""
    base = StudioConfig().to_dict()
    return {section: {k: base[section][k] for k in keys} for section, keys in SMALL.items()}


def parameter_count(name: str) -> int | None:
    """Parameters of a base model from its config alone (meta device); None when it cannot be read."""
    from studio.config import ModelConfig

    try:
        from studio.engine.train.estimate import meta_model

        model, _ = meta_model(StudioConfig(model=ModelConfig(name=name)))
        return sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 - offline, gated, odd architecture: fall back to the practitioner defaults
        return None


def _millions(n: int | None) -> str:
    return "size unknown" if n is None else f"{n / 1e6:,.1f} M parameters"


def defaults_for(model: str) -> Defaults:
    n = parameter_count(model)
    small = model.strip() == TINY_NAME or (n is not None and n < SMALL_PARAMS)
    values = SMALL if small else _practitioner()
    return Defaults(copy.deepcopy(values), (SMALL_REASON if small else HUB_REASON).format(params=_millions(n)), small)


def default_learning_rate(model: str, parameters: int, kind: str) -> float:
    """The learning rate the defaults give ``model`` (of ``parameters``) for a method of the LoRA family; the
    practitioner default of the method where it has its own (full fine-tuning: 2e-5)."""
    own = methods.get(kind).default_lr
    if own is not None:
        return own
    small = model.strip() == TINY_NAME or 0 < parameters < SMALL_PARAMS
    return SMALL["train"]["learning_rate"] if small else StudioConfig().train.learning_rate


def with_defaults(raw: dict | None) -> tuple[StudioConfig, Defaults]:
    """A config from a file's sections: the model's defaults wherever the file is silent."""
    raw = copy.deepcopy(raw or {})
    if not isinstance(raw, dict):
        return StudioConfig.from_dict(raw), defaults_for(TINY_NAME)  # from_dict says what is wrong
    model = ((raw.get("model") or {}).get("name") if isinstance(raw.get("model"), dict) else None) or TINY_NAME
    found = defaults_for(str(model))
    for section, values in found.values.items():
        given = raw.get(section)
        if given is None or isinstance(given, dict):
            raw[section] = {**values, **(given or {})}
    return StudioConfig.from_dict(raw), found
