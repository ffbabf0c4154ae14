"""Model tab: base model, method, every hyperparameter with its help line, presets, the memory
estimate with a fits / does-not-fit verdict, and the equivalent YAML and CLI command."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import gradio as gr

from studio.config import ConfigError, MethodConfig, StudioConfig
from studio.engine import budget, gate, methods, runs
from studio.engine.errors import StudioError
from studio.engine.models import BERT_NAME, CURATED, MINILM_NAME, T5_NAME, cached_models, run_reference
from studio.engine.tiny import TINY_NAME
from studio.engine.train.defaults import defaults_for
from studio.engine.train.estimate import estimate
from studio.engine.train.lr_find import expected_seconds, lr_find
from studio.policy import policy
from studio.settings import ASSETS
from studio.ui.charts import lr_figure
from studio.ui.forms import PRESETS, SMALL_PRESET, Form, apply_preset
from studio.ui.handlers import guard, may_train, scrub
from studio.ui.state import Context
from studio.ui.timed import timed

# Every method setting; the Model tab shows only the chosen method's (its ``settings``), as LlamaBoard does.
METHOD = [f.name for f in dataclasses.fields(MethodConfig) if f.name not in ("kind", "objective")]
TRAIN = ["epochs", "max_steps", "batch_size", "grad_accum", "learning_rate", "scheduler", "warmup_ratio",
         "weight_decay", "max_grad_norm", "precision", "gradient_checkpointing", "group_by_length", "packing",
         "torch_compile", "liger_kernel", "seed", "logging_steps", "eval_steps", "early_stopping_patience",
         "save_steps", "save_total_limit", "threads"]


@dataclass
class ModelTab:
    page: gr.Tab
    defaults: gr.Markdown
    preset: gr.Dropdown
    apply_preset: gr.Button
    estimate: gr.Markdown
    yaml: gr.Code
    cli: gr.Code
    save: gr.DownloadButton
    load: gr.File
    lr_find: gr.Button
    lr_use: gr.Button
    lr_plot: gr.Plot
    lr_note: gr.Markdown
    method_note: gr.Markdown
    typed: gr.Textbox
    lr_suggestion: gr.State  # the range test's suggested learning rate, as a number (kept on the server)


def model_choices(own_runs: list[str] = ()) -> list[str]:
    """The starter, curated hub models, the local cache, then the visitor's own trained runs (run:NAME)."""
    starters = ["studio-tiny", MINILM_NAME, BERT_NAME, T5_NAME]
    return list(dict.fromkeys([*starters, *CURATED, *cached_models(), *map(run_reference, own_runs)]))


def build(form: Form) -> ModelTab:
    with gr.Tab("Model") as page:
        gr.Markdown("### 2. Choose a base model and a method\n`studio-tiny` works offline; a hub id or a local folder "
                    "works too. Hover a setting's help line to see what it does.")
        with gr.Row():
            form.widgets["model.name"] = gr.Dropdown(
                choices=model_choices(), value="studio-tiny", allow_custom_value=True, label="Base model",
                elem_id="model-name", scale=2,
                info="studio-tiny (offline), studio-minilm / studio-tiny-bert (encoders: masked LM), "
                     "studio-tiny-t5 (an encoder-decoder: seq2seq), a hub id, a local folder, a model from your "
                     "Hugging Face cache, or one of your runs (run:NAME) to train further from what it learned")
            typed = gr.Textbox(label="…or type a hub id and press Enter", placeholder="org/model", scale=1,
                               elem_id="model-typed", info="used exactly as typed (the list above completes to "
                                                           "its first match)")
            with gr.Column(scale=1):
                preset = gr.Dropdown(choices=list(PRESETS), value=SMALL_PRESET, label="Preset", elem_id="preset")
                apply_preset = gr.Button("Apply preset", size="sm")
        initial = defaults_for(TINY_NAME)
        defaults = gr.Markdown(defaults_line(initial), elem_id="defaults-note")
        with gr.Row():
            form.add("method.kind")
            form.add("method.objective")
            form.widgets["method.reward_model"] = gr.Dropdown(  # beside the method: RL cannot start without it
                choices=[], value="", allow_custom_value=True, label="reward model", visible=False,
                elem_id="method-reward_model", info="rl: one of your reward runs (method.kind reward), as run:NAME")
        with gr.Accordion("Training", open=True):
            _rows(form, "train", TRAIN, 6)
            with gr.Row():
                lr_find = gr.Button("Find a learning rate (range test)", size="sm", elem_id="lr-find")
                lr_use = gr.Button("Use the suggestion", size="sm", visible=False, elem_id="lr-use")
            lr_note = gr.Markdown(elem_id="lr-note")
            lr_suggestion = gr.State(None)
            lr_plot = gr.Plot(visible=False, elem_id="lr-plot", label="Loss against learning rate")
        with gr.Accordion("Method settings (the chosen method's)", open=False):
            method_note = gr.Markdown(visible=False, elem_id="method-note")
            _rows(form, "method", [m for m in METHOD if m != "reward_model"], 5)
        with gr.Accordion("Model loading (advanced)", open=False):
            with gr.Row():
                form.add("model.revision")
                form.add("model.trust_remote_code", interactive=policy().allows("trust_remote_code"))
                form.add("model.allow_pickle", interactive=policy().allows("allow_pickle"))
            form.add("model.chat_template", lines=3)
        estimate_md = gr.Markdown(elem_id="estimate")
        with gr.Accordion("Equivalent YAML and command line", open=False):
            yaml_code = gr.Code(language="yaml", label="studio-config.yaml", interactive=False)
            cli_code = gr.Code(language="shell", label="command", interactive=False)
            with gr.Row():
                save = gr.DownloadButton("Save config YAML")
                load = gr.File(label="Load a config YAML", file_types=[".yaml", ".yml"], type="filepath", height=80)
    form.set_values(initial.values)  # the page opens on studio-tiny: its defaults
    return ModelTab(page=page, defaults=defaults, preset=preset, apply_preset=apply_preset, estimate=estimate_md,
                    yaml=yaml_code, cli=cli_code, save=save, load=load, lr_find=lr_find, lr_use=lr_use,
                    lr_plot=lr_plot, lr_note=lr_note, method_note=method_note, typed=typed,
                    lr_suggestion=lr_suggestion)


def _rows(form: Form, section: str, names: list[str], per_row: int) -> None:
    for start in range(0, len(names), per_row):
        with gr.Row():
            for name in names[start:start + per_row]:
                form.add(f"{section}.{name}")


def describe(config: StudioConfig) -> tuple[str, str, str, str]:
    """(estimate markdown, YAML, CLI command, a YAML file to download) for a config."""
    try:
        e = estimate(config)
        fits = "✓" if e.fits else ("✗" if e.fits is False else "?")
        verdict = e.verdict() if policy().shows_server else f"needs about {e.total_mb / 1024:.2f} GiB"  # host facts
        md = (f"**Memory estimate** {fits} {verdict}  \n{e.params:,} parameters, {e.trainable:,} trainable; "
              f"weights {e.weights_mb:,.1f} MB, gradients {e.gradients_mb:,.1f} MB, optimizer "
              f"{e.optimizer_mb:,.1f} MB, activations {e.activations_mb:,.1f} MB (batch {config.train.batch_size} "
              f"× length {config.data.max_length})")
    except (StudioError, ConfigError, OSError, ValueError) as err:
        md = f"**Memory estimate** unavailable: {scrub(str(err))}"
    command = "python -m studio train studio-config.yaml\n# or from the bundled example:\n" + \
        "python -m studio train assets/configs/quickstart.yaml " + " ".join(
            f"--set {shlex.quote(f'{k}={v}')}" for k, v in overrides(config))
    return md, config.to_yaml(), command, str(yaml_file(config))


KEEP_CONFIGS = 200  # config files kept for download; older ones go as new ones come


def yaml_file(config: StudioConfig) -> Path:
    """The config as a file named studio-config.yaml, one folder per distinct content, in Gradio's own cache when
    the app runs (emptied at start and at shutdown), else the system's temporary folder; only the newest
    ``KEEP_CONFIGS`` are kept (Gradio hands the visitor its own copy)."""
    text = config.to_yaml()
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / "studio-configs"
    folder = root / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "studio-config.yaml"
    if not path.exists():
        path.write_text(text)
    os.utime(folder)
    for old in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_CONFIGS:]:
        shutil.rmtree(old, ignore_errors=True)
    return path


@lru_cache(maxsize=1)
def _quickstart() -> dict:
    """Read once: the page asks for the command on every change of a setting."""
    return StudioConfig.load(ASSETS / "configs" / "quickstart.yaml").to_dict()


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


def defaults_line(found) -> str:
    return f"ℹ **Defaults** fit {found.reason}. Change any of them below."


class Handlers:
    def __init__(self, t: ModelTab, ctx: Context):
        self.t, self.form, self.ctx = t, ctx.form, ctx

    def model_changed(self, k, name: str, request: gr.Request):
        """A new base model brings its own defaults (the same rule as the CLI's)."""
        self.ctx.session(k, request)  # the visitor acting: the model may be one of their runs
        found = defaults_for((name or "").strip() or TINY_NAME)
        return {**self.form.updates(found.values), self.t.defaults: defaults_line(found),
                self.t.preset: SMALL_PRESET if found.small else "LoRA"}

    def typed_model(self, k, text: str, request: gr.Request):
        """A hub id typed and confirmed with Enter is the model, exactly as typed, with its defaults."""
        name = (text or "").strip()
        if not name:
            return {self.form.widgets["model.name"]: gr.skip()}
        owner = self.ctx.session(k, request).owner
        choices = list(dict.fromkeys([name, *model_choices(runs.trained_runs(owner))]))
        return {**self.model_changed(k, name, request),
                self.form.widgets["model.name"]: gr.Dropdown(choices=choices, value=name)}

    def describe(self, values: dict, request: gr.Request):
        self.ctx.session(values[self.ctx.key], request)  # the visitor acting: the model may be one of their runs
        try:
            return describe(self.form.to_config(values))
        except (ConfigError, ValueError) as e:
            return f"**Setting to fix:** {e}", gr.skip(), gr.skip(), gr.skip()

    def preset(self, values: dict):
        name = values[self.t.preset]
        if not name:
            raise gr.Error("Pick a preset first.")
        return self.form.values_of(apply_preset(self.form.to_config(values), name))

    def find_lr(self, values: dict, request: gr.Request, progress=gr.Progress()):
        s = self.ctx.session(values[self.ctx.key], request)
        may_train(self.ctx, s)
        config = s.checked(self.form.to_config(values))  # the gate: only what this visitor may use
        if not config.data.path:
            raise gr.Error("Choose a dataset in the Data tab first: the range test trains on it.",
                           print_exception=False)
        # a job on the device queue; on a public deployment in a child with the deployment's minutes and memory,
        # ended by the visitor's Stop and the operator's "stop all"; its progress by this machine's last range test
        curve = timed(progress, "ramping the learning rate over 100 steps", expected_seconds(config),
                      gate.device_job, lr_find, config, seconds=budget.MAX_MINUTES * 60, what="the range test")
        if curve.suggestion is None:
            return gr.Plot(visible=False), "The loss blew up too soon to suggest anything: lower the batch size?", \
                gr.Button(visible=False), None
        note = (f"Suggested learning rate **{curve.suggestion:.2e}**: {curve.rule}. Your setting is "
                f"{config.train.learning_rate:.2e}.")
        return (gr.Plot(lr_figure(curve.lrs, curve.losses, curve.smoothed, curve.suggestion), visible=True), note,
                gr.Button(f"Use {curve.suggestion:.2e}", visible=True), curve.suggestion)

    def model_runs(self, k, request: gr.Request):
        """The model list gains the visitor's own trained runs (they may have trained one since)."""
        return gr.Dropdown(choices=model_choices(runs.trained_runs(self.ctx.session(k, request).owner)))

    def method_fields(self, kind: str):
        """Only the chosen method's settings are shown (full and ia3 have none of their own)."""
        own = getattr(methods.find(kind), "settings", ())
        shown = [gr.update(visible=(m in own)) for m in METHOD]
        none = not own
        return (*shown, gr.Markdown(f"Method **{kind}** has no settings of its own: the Training settings above are "
                                    "all it needs.", visible=none))

    def reward_runs(self, k, current, request: gr.Request):
        """RL's reward model is picked from the visitor's own reward runs."""
        owner = self.ctx.session(k, request).owner
        names = [run_reference(r.name) for r in runs.list_runs(owner)
                 if (m := methods.find(r.method)) is not None and m.score_head and runs.has_weights(r.path)]
        return gr.Dropdown(choices=names, value=current if current in names else next(iter(names), ""))

    def use_lr(self, suggestion: float | None):
        return gr.skip() if suggestion is None else suggestion

    def load(self, path):
        if not path:
            return gr.skip()
        return self.form.values_of(StudioConfig.load(path))


def wire(t: ModelTab, ctx: Context) -> None:
    h, form = Handlers(t, ctx), ctx.form
    triggers = [c.change for c in form.components if c is not form.widgets["data.path"]]
    t.page.select(h.model_runs, ctx.key, form.widgets["model.name"], api_visibility="private")
    gr.on([ctx.demo.load, *triggers], h.describe, form.inputs | {ctx.key}, [t.estimate, t.yaml, t.cli, t.save],
          api_name="estimate", trigger_mode="always_last", show_progress="hidden")
    t.apply_preset.click(h.preset, form.inputs | {t.preset}, form.components, api_name="apply_preset")
    profile = list(form.updates(defaults_for(TINY_NAME).values))
    form.widgets["model.name"].input(h.model_changed, [ctx.key, form.widgets["model.name"]],
                                     [*profile, t.defaults, t.preset],
                                     api_name="model_defaults")
    t.load.upload(guard(h.load), t.load, form.components, api_name="load_config")
    t.typed.submit(h.typed_model, [ctx.key, t.typed], [form.widgets["model.name"], *profile, t.defaults, t.preset],
                   api_name="type_model")
    t.lr_find.click(guard(h.find_lr), form.inputs | {ctx.key}, [t.lr_plot, t.lr_note, t.lr_use, t.lr_suggestion],
               api_name="lr_find")
    t.lr_use.click(h.use_lr, t.lr_suggestion, form.widgets["train.learning_rate"], api_name="lr_use")
    kind = form.widgets["method.kind"]
    gr.on([ctx.demo.load, kind.change], h.method_fields, kind, [*(form.widgets[f"method.{m}"] for m in METHOD),
                                                              t.method_note], api_visibility="private")
    gr.on([t.page.select, kind.change], h.reward_runs, [ctx.key, form.widgets["method.reward_model"]],
          form.widgets["method.reward_model"], api_visibility="private")
