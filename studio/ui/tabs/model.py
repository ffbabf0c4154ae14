"""Model tab: base model, method, every hyperparameter with its help line, presets, the memory
estimate with a fits / does-not-fit verdict, and the equivalent YAML and CLI command."""

from __future__ import annotations

import hashlib
import shlex
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import gradio as gr

from ...config import ConfigError, StudioConfig
from ...engine.errors import StudioError
from ...engine.estimate import estimate
from ...engine.models import CURATED, cached_models, public_mode
from ..forms import PRESETS, Form

METHOD = ["lora_r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora", "quant_bits",
          "quant_type", "double_quant", "compute_dtype"]
TRAIN = ["epochs", "max_steps", "batch_size", "grad_accum", "learning_rate", "scheduler", "warmup_ratio",
         "weight_decay", "max_grad_norm", "precision", "gradient_checkpointing", "seed", "logging_steps",
         "eval_steps", "save_steps", "save_total_limit", "threads"]


@dataclass
class ModelTab:
    preset: gr.Dropdown
    apply_preset: gr.Button
    estimate: gr.Markdown
    yaml: gr.Code
    cli: gr.Code
    save: gr.DownloadButton
    load: gr.File


def model_choices() -> list[str]:
    return list(dict.fromkeys(["studio-tiny", *CURATED, *cached_models()]))


def build(form: Form) -> ModelTab:
    gr.Markdown("### 2. Choose a base model and a method\n`studio-tiny` works offline; a hub id or a local folder "
                "works too. Hover a setting's help line to see what it does.")
    with gr.Row():
        form.widgets["model.name"] = gr.Dropdown(choices=model_choices(), value="studio-tiny", allow_custom_value=True,
                                                 label="Base model", elem_id="model-name", scale=2,
                                                 info="studio-tiny (offline), a hub id, a local folder, or a "
                                                      "model from your Hugging Face cache")
        with gr.Column(scale=1):
            preset = gr.Dropdown(choices=list(PRESETS), value=None, label="Preset", elem_id="preset")
            apply_preset = gr.Button("Apply preset", size="sm")
    with gr.Row():
        form.add("method.kind")
        form.add("method.objective")
    with gr.Accordion("Training", open=True):
        _rows(form, "train", TRAIN, 6)
    with gr.Accordion("LoRA / QLoRA", open=False):
        _rows(form, "method", METHOD, 5)
    with gr.Accordion("Model loading (advanced)", open=False):
        with gr.Row():
            form.add("model.revision")
            form.add("model.trust_remote_code", interactive=not public_mode())
            form.add("model.allow_pickle", interactive=not public_mode())
        form.add("model.chat_template", lines=3)
    estimate_md = gr.Markdown(elem_id="estimate")
    with gr.Accordion("Equivalent YAML and command line", open=False):
        yaml_code = gr.Code(language="yaml", label="studio-config.yaml", interactive=False)
        cli_code = gr.Code(language="shell", label="command", interactive=False)
        with gr.Row():
            save = gr.DownloadButton("Save config YAML")
            load = gr.File(label="Load a config YAML", file_types=[".yaml", ".yml"], type="filepath", height=80)
    return ModelTab(preset, apply_preset, estimate_md, yaml_code, cli_code, save, load)


def _rows(form: Form, section: str, names: list[str], per_row: int) -> None:
    for start in range(0, len(names), per_row):
        with gr.Row():
            for name in names[start:start + per_row]:
                form.add(f"{section}.{name}")


def describe(config: StudioConfig) -> tuple[str, str, str, str]:
    """(estimate markdown, YAML, CLI command, a YAML file to download) for a config."""
    try:
        e = estimate(config)
        fits = "✅" if e.fits else ("❌" if e.fits is False else "❔")
        md = (f"**Memory estimate** {fits} {e.verdict()}  \n{e.params:,} parameters, {e.trainable:,} trainable; "
              f"weights {e.weights_mb:,.1f} MB, gradients {e.gradients_mb:,.1f} MB, optimizer "
              f"{e.optimizer_mb:,.1f} MB, activations {e.activations_mb:,.1f} MB (batch {config.train.batch_size} "
              f"× length {config.data.max_length})")
    except (StudioError, ConfigError, OSError, ValueError) as err:
        md = f"**Memory estimate** unavailable: {err}"
    command = "python -m studio train studio-config.yaml\n# or from the bundled example:\n" + \
        "python -m studio train assets/configs/quickstart.yaml " + " ".join(
            f"--set {shlex.quote(f'{k}={v}')}" for k, v in overrides(config))
    return md, config.to_yaml(), command, str(yaml_file(config))


def yaml_file(config: StudioConfig) -> Path:
    """The config as a file named studio-config.yaml, one folder per distinct content."""
    text = config.to_yaml()
    folder = Path(tempfile.gettempdir()) / "studio-configs" / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "studio-config.yaml"
    if not path.exists():
        path.write_text(text)
    return path


@lru_cache(maxsize=1)
def _quickstart() -> dict:
    """Read once: the page asks for the command on every change of a setting."""
    return StudioConfig.load(Path(__file__).resolve().parents[3] / "assets/configs/quickstart.yaml").to_dict()


def overrides(config: StudioConfig) -> list[tuple[str, object]]:
    """The settings that differ from the bundled quickstart, as --set pairs."""
    base = _quickstart()
    mine = config.to_dict()
    out = []
    for section, values in mine.items():
        if isinstance(values, dict):
            out += [(f"{section}.{k}", _yaml_value(v)) for k, v in values.items() if base[section].get(k) != v]
    return out


def _yaml_value(v) -> str:
    import yaml

    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
