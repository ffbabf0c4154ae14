"""The one schema: every setting of a run, its default, its help line and its rules.

The UI, the CLI and YAML files all read defaults from here. The sections are pydantic dataclasses: a field's
type, its bounds (``ge``/``gt``/``le``/``lt``) and its choices are declared beside its default and its help line
(the UI's tooltip and the widget's range come from the same declaration), pydantic coerces what YAML and forms
give (``"1e-4"`` to a float, ``3.0`` to an int) and refuses unknown keys. Every refusal is one line naming the
field, e.g. ``train.learning_rate must be > 0, got 0``; rules between fields are each section's
``__post_init__``. This module imports nothing from studio.

The training methods are not listed here: each registers itself (``register_method``) from its module in
``studio/engine/methods/``, which the ``studio`` package loads on import; ``method.kind`` must name one, and
each method says which combinations of settings it refuses.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass


class ConfigError(ValueError):
    """A setting is invalid; the message names the field."""


def _f(default: Any, help: str, choices: Any = None, names: str | None = None, runs_code: bool = False,
       **bounds: float) -> Any:
    """A setting: its default, its help line, its choices (if any) and its bounds (``ge=1``, ``gt=0``...).
    ``names``: the setting names a "model" or a "data" file (what a public deployment checks: ``references``);
    ``runs_code``: switching it on runs code that is not the studio's (a public deployment needs the operator's
    consent)."""
    extra = {**({"choices": choices} if choices is not None else {}), **({"names": names} if names else {}),
             **({"runs_code": True} if runs_code else {})} or None
    if isinstance(default, (list, dict)):
        return Field(default_factory=lambda d=default: type(d)(d), description=help, json_schema_extra=extra)
    return Field(default=default, description=help, json_schema_extra=extra, **bounds)


FORMATS = ("auto", "text", "alpaca", "sharegpt", "messages", "prompt_completion", "preference", "kto")
OBJECTIVES = ("auto", "causal_lm", "instruction", "masked_lm", "seq2seq")
SCHEDULERS = ("constant", "linear", "cosine")
TRACKERS = ("tensorboard", "trackio", "mlflow", "wandb")  # the Trainer's own integrations, offline first
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
COMPILE = ("auto", "on", "off")
# The training methods by name, each a frozen spec (studio.engine.methods.Method) with at least ``name``,
# ``help``, ``packages`` and ``refusal(config)``; filled by ``register_method``.
METHODS: dict[str, Any] = {}


def register_method(method: Any) -> None:
    METHODS[method.name] = method


class _Registered:
    """``method.kind``'s choices: the methods registered, at the moment they are asked for."""

    def __iter__(self):
        return iter(list(METHODS))

    def __contains__(self, name: object) -> bool:
        return name in METHODS

    def __len__(self) -> int:
        return len(METHODS)


# Lax where a person is (YAML's "1e-4", a form's 3.0, a number typed for a name), strict on what is unknown.
RULES = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)
SECTIONS: dict[str, type] = {}


@dataclass(config=RULES)
class _Section:
    """What every section's fields obey beyond their type and bounds: a number is never a yes/no, and a value
    with choices is one of them (a list: each of its items)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and cls.__pydantic_fields__[info.field_name].annotation in (int, float):
            raise ValueError("must be a number")
        return value

    @field_validator("*")
    @classmethod
    def _one_of_the_choices(cls, value: Any, info: ValidationInfo) -> Any:
        choices = (cls.__pydantic_fields__[info.field_name].json_schema_extra or {}).get("choices")
        many = isinstance(value, list)
        if choices is not None and any(v not in choices for v in (value if many else [value])):
            raise ValueError(f"must be {'a list of' if many else 'one of'} {', '.join(map(str, choices))}")
        return value


def _section(name: str | None):
    """A section of the config (``name``; None: the whole config): a pydantic dataclass whose every refusal,
    however it is made (``from_dict``, in code, ``dataclasses.replace``), is a one-line ConfigError."""
    def make(cls: type) -> type:
        cls = dataclass(cls, config=RULES)
        validated = cls.__init__

        def __init__(self, *args, **kwargs) -> None:
            try:
                validated(self, *args, **kwargs)
            except ValidationError as e:
                raise _said(e, name) from None

        cls.__init__ = __init__
        if name:
            SECTIONS[name] = cls
        return cls
    return make


@_section("data")
class DataConfig(_Section):
    path: str = _f("", "Dataset file: CSV, JSON, JSONL, Parquet or TXT.", names="data")
    format: str = _f("auto", "Record format; auto detects it from the columns.", FORMATS)
    columns: dict = _f({}, "Column mapping, studio name -> file column, e.g. {instruction: question}.")
    val_size: float = _f(0.1, "Fraction of records held out for validation, in [0, 1).", ge=0, lt=1)
    val_path: str = _f("", "A separate validation file (any format the studio reads); empty = split data.path.",
                       names="data")
    max_length: int = _f(512, "Longest tokenized example; longer ones are truncated and counted.", ge=8)
    pack_documents: bool = _f(True, "Plain text: concatenate documents (EOS between them) into max_length blocks "
                                    "instead of truncating each.")
    limit: int = _f(0, "Use only the first N records (0 = all).", ge=0)
    system_prompt: str = _f("", "System message added to chat examples that have none.")


@_section("model")
class ModelConfig(_Section):
    name: str = _f("studio-tiny", "Base model: a hub id, a local folder, or studio-tiny (offline).", names="model")
    revision: str = _f("", "Hub revision (branch, tag or commit); empty = the default branch.")
    trust_remote_code: bool = _f(False, "Run model code shipped in the repo. Off: only trust it if you read it.",
                                 runs_code=True)
    allow_pickle: bool = _f(False, "Allow pickle .bin weights when no safetensors exist (unsafe).", runs_code=True)
    chat_template: str = _f("", "Jinja chat template overriding the tokenizer's; empty = its own or the default.")

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError(f"model.name must be set, got {self.name!r}")


@_section("method")
class MethodConfig(_Section):
    kind: str = _f("lora", "Training method.", _Registered())
    objective: str = _f("auto", "causal_lm: loss on every token; instruction: loss on responses only; masked_lm: "
                                "BERT-style, 15 % of tokens hidden and predicted (encoders, plain text); seq2seq: "
                                "T5/BART-style, the encoder reads the prompt and the decoder writes the answer "
                                "(encoder-decoders). auto: by data and model.", OBJECTIVES)
    lora_r: int = _f(16, "LoRA rank.", ge=1)
    lora_alpha: int = _f(32, "LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).", gt=0)
    lora_dropout: float = _f(0.05, "Dropout on the LoRA input, in [0, 1).", ge=0, lt=1)
    target_modules: Any = _f("auto", "LoRA targets: auto (per architecture), all-linear, or a list of module names.")
    use_rslora: bool = _f(False, "Rank-stabilised LoRA: scale by alpha / sqrt(r).")
    use_dora: bool = _f(False, "Weight-decomposed LoRA (DoRA).")
    quant_bits: int = _f(4, "QLoRA base precision: 4 (NF4) or 8 bits.", (4, 8))
    quant_type: str = _f("nf4", "4-bit data type.", ("nf4", "fp4"))
    double_quant: bool = _f(True, "Quantize the 4-bit quantization constants too (saves ~0.4 bit/param).")
    compute_dtype: str = _f("auto", "QLoRA compute dtype: auto follows train.precision.", PRECISIONS)
    adalora_init_r: int = _f(12, "AdaLoRA: the rank each layer starts with (the budget is then reallocated).", ge=1)
    adalora_target_r: int = _f(8, "AdaLoRA: the average rank left at the end of the schedule.", ge=1)
    num_virtual_tokens: int = _f(20, "prefix / ptuning / prompt: how many virtual tokens are trained.", ge=1)
    encoder_hidden_size: int = _f(128, "ptuning: hidden size of the prompt encoder (an MLP).", ge=1)
    reward_model: str = _f("", "rl: the reward model, run:NAME of a method.kind reward run.", names="model")
    num_generations: int = _f(4, "rl: answers sampled per prompt; GRPO scores each against the others (>= 2).",
                              ge=2)
    max_completion_length: int = _f(32, "rl: longest sampled answer, in tokens.", ge=1)

    def __post_init__(self) -> None:
        t = self.target_modules
        if not ((isinstance(t, str) and t.strip()) or (isinstance(t, list) and t and all(isinstance(x, str)
                                                                                          for x in t))):
            raise ConfigError(f"method.target_modules must be auto, all-linear or a list of module names, got {t!r}")
        if self.adalora_target_r > self.adalora_init_r:
            raise ConfigError(f"method.adalora_target_r must be <= method.adalora_init_r ({self.adalora_init_r}), "
                              f"got {self.adalora_target_r!r}")
        for pkg in METHODS[self.kind].packages:
            if importlib.util.find_spec(pkg) is None:
                raise ConfigError(f"method.kind {self.kind} needs the '{pkg}' package: pip install {pkg}")


@_section("train")
class TrainConfig(_Section):
    epochs: float = _f(1.0, "Passes over the training set (ignored when max_steps > 0).", ge=0)
    max_steps: int = _f(0, "Optimizer steps to run; 0 = use epochs.", ge=0)
    batch_size: int = _f(4, "Examples per device per forward pass.", ge=1)
    grad_accum: int = _f(1, "Forward passes accumulated per optimizer step.", ge=1)
    learning_rate: float = _f(2e-4, "Peak learning rate.", gt=0)
    scheduler: str = _f("cosine", "Learning-rate schedule after warmup.", SCHEDULERS)
    warmup_ratio: float = _f(0.05, "Fraction of steps spent warming up linearly from 0.", ge=0, lt=1)
    weight_decay: float = _f(0.0, "AdamW weight decay.", ge=0)
    max_grad_norm: float = _f(1.0, "Clip the gradient norm to this (0 = no clipping).", ge=0)
    precision: str = _f("auto", "auto: bf16 on GPUs that support it, else fp32 (fp16 on older GPUs).", PRECISIONS)
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass: less memory, ~30% slower.")
    group_by_length: bool = _f(True, "Batch examples of similar length together: less padding, the same examples.")
    packing: bool = _f(False, "Padding-free batches: examples side by side in one row, positions restarting at "
                              "each, attention never crossing them; the same loss as padding.")
    torch_compile: str = _f("auto", "Compile the repeated decoder layer with torch.compile (regional: compiled once, "
                                    "reused by every layer). auto: when the run is long enough to repay the compile "
                                    "on this machine; a failed compile falls back to eager in one line.",
                            COMPILE)
    liger_kernel: bool = _f(False, "Liger's fused Triton kernels (CUDA GPU and the liger-kernel package): less "
                                   "memory and more speed on long sequences.")
    seed: int = _f(42, "Seed for data order, splits and initialisation.", ge=0)
    logging_steps: int = _f(1, "Log metrics every N optimizer steps.", ge=1)
    eval_steps: int = _f(0, "Evaluate on the validation split every N steps (0 = at the end only).", ge=0)
    save_steps: int = _f(0, "Save a resumable checkpoint every N steps (0 = only when stopped).", ge=0)
    save_total_limit: int = _f(2, "Keep at most N checkpoints (0 = all); the best one is always kept.", ge=0)
    early_stopping_patience: int = _f(0, "Stop after N evaluations without a lower eval loss and keep the best "
                                         "step's weights (0 = off; needs eval_steps).", ge=0)
    threads: int = _f(0, "CPU threads for torch; 0 = one per usable core (measured: docs/benchmarks.md).", ge=0)
    report_to: list = _f([], "Trackers that also record the run (tensorboard, trackio, mlflow, wandb; none by "
                             "default). Local and offline unless you configure a remote yourself.", TRACKERS)

    @field_validator("torch_compile", mode="before")
    @classmethod
    def _compile_as_yes_no(cls, value: Any) -> Any:  # a file from before auto: true / false
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker_as_text(cls, value: Any) -> Any:  # `--set train.report_to=tensorboard`, or "none"
        if isinstance(value, str):
            return [] if value.strip() in ("", "none") else [value.strip()]
        return value

    def __post_init__(self) -> None:
        if self.max_steps == 0 and self.epochs == 0:
            raise ConfigError("train.epochs and train.max_steps are both 0: set one of them to train at all")
        if self.early_stopping_patience and not self.eval_steps:
            raise ConfigError("train.early_stopping_patience needs train.eval_steps > 0: the evaluations it compares")


@_section("eval")
class EvalConfig(_Section):
    limit: int = _f(50, "Evaluate on at most N held-out examples.", ge=1)
    max_new_tokens: int = _f(0, "Longest generated answer in tokens; 0 = 1.5x the longest reference (16-256).", ge=0)
    do_sample: bool = _f(False, "Sample instead of greedy decoding.")
    temperature: float = _f(0.7, "Sampling temperature (with do_sample).", gt=0)
    top_p: float = _f(0.95, "Nucleus sampling mass (with do_sample).", gt=0, le=1)
    repetition_penalty: float = _f(1.0, "Penalise repeated tokens (1 = off).", gt=0)
    no_repeat_ngram_size: int = _f(4, "Never repeat an n-gram of this many tokens: a guard against loops (0 = off).",
                                   ge=0)
    seed: int = _f(0, "Seed for sampling and for the bootstrap.", ge=0)
    batch_size: int = _f(8, "Prompts generated together (left-padded).", ge=1)
    bertscore: bool = _f(True, "Compute BERTScore (offline: MiniLM from its pip package).")
    extra_metrics: list = _f([], "More metrics: evaluate ids or local metric script folders, scored per example.",
                             runs_code=True)
    reward_model: str = _f("", "Score every answer with a reward model (run:NAME of a method.kind reward run): "
                               "mean reward of base and tuned, with intervals and a paired test.", names="model")


@_section(None)
class StudioConfig:
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run_name: str = ""

    # -- dict / YAML -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        """Settings that cannot go together, said in one line: the method says which it refuses."""
        problem = METHODS[self.method.kind].refusal(self)
        if problem:
            raise ConfigError(problem)

    @classmethod
    def from_dict(cls, raw: dict | None) -> StudioConfig:
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"a config must be a mapping of sections (data, model, ...), got {type(raw).__name__}")
        raw = {k: ({} if v is None and k in SECTIONS else v) for k, v in (raw or {}).items()}
        raw["run_name"] = raw.get("run_name") or ""
        return cls(**raw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> StudioConfig:
        return cls.from_dict(read_yaml(path))

    def with_overrides(self, assignments: list[str]) -> StudioConfig:
        """Apply ``section.key=value`` strings; values are parsed as YAML scalars or lists."""
        return StudioConfig.from_dict(apply_overrides(self.to_dict(), assignments))


class Setting(NamedTuple):
    """What the UI needs of one field to make its widget."""
    default: Any
    help: str
    type: type
    choices: Any  # None, a tuple, or the registered methods
    minimum: float | None


def setting(section: str, name: str) -> Setting:
    info = SECTIONS[section].__pydantic_fields__[name]
    bounds = _bounds(info)
    return Setting(info.get_default(call_default_factory=True), field_help(section, name), info.annotation,
                   (info.json_schema_extra or {}).get("choices"), bounds.get("ge", bounds.get("gt")))


def marked(mark: str) -> list[tuple[str, str, Any]]:
    """Every ``(section, field, value of the mark)`` whose field carries ``mark`` ("names", "runs_code"), in the
    order of the sections: what a public deployment checks walks these, so a new method's model setting marked
    ``names="model"`` is checked without a line in the gate."""
    return [(section, name, (info.json_schema_extra or {})[mark]) for section, cls in SECTIONS.items()
            for name, info in cls.__pydantic_fields__.items() if (info.json_schema_extra or {}).get(mark)]


_OPS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _bounds(info) -> dict[str, float]:
    """A field's declared bounds, e.g. {"ge": 0, "lt": 1}."""
    return {key: getattr(m, key) for m in info.metadata for key in _OPS if hasattr(m, key)}


_TYPES = {"int": "an integer", "float": "a number", "finite": "a finite number", "bool": "true or false",
          "string": "text", "list": "a list", "dict": "a mapping"}


def _said(e: ValidationError, section: str | None = None) -> ConfigError:
    """Pydantic's first complaint as the studio's one line: ``train.learning_rate must be > 0, got 0``."""
    err = e.errors(include_url=False)[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):  # a rule between fields, already said in full
        return cause
    loc = [*([section] if section else []), *map(str, err["loc"])]
    name, value, problem = ".".join(loc), err.get("input"), err["type"]
    if problem == "unexpected_keyword_argument":
        if len(loc) == 1:
            return ConfigError(f"unknown config section '{name}'; valid: {', '.join([*SECTIONS, 'run_name'])}")
        return ConfigError(f"unknown key '{name}'; valid: {', '.join(SECTIONS[loc[0]].__pydantic_fields__)}")
    if len(loc) == 1 and loc[0] in SECTIONS:
        return ConfigError(f"config section '{name}' must be a mapping, got {value!r}")
    if problem in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bounds = _bounds(SECTIONS[loc[0]].__pydantic_fields__[loc[1]])
        rule = "must be " + " and ".join(f"{_OPS[key]} {v}" for key, v in bounds.items())
    elif problem == "value_error":  # the shared rules above: "must be one of ...", "must be a number"
        rule = str(cause)
    elif problem.split("_")[0] in _TYPES:
        rule = "must be " + _TYPES[problem.split("_")[0]]
    else:
        rule = err["msg"][:1].lower() + err["msg"][1:]
    return ConfigError(f"{name} {rule}, got {value!r}")


MAX_YAML_BYTES = 1_000_000


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors' aliases: a config never needs them, and a nest of aliases expands
    exponentially (a 1 KB "billion laughs" file takes gigabytes)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.MarkedYAMLError(problem="aliases (*name) are not allowed in a config", problem_mark=mark)
        return super().compose_node(parent, index)


def parse_yaml(text: str, where: str = "config") -> Any:
    if len(text.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_YAML_BYTES // 1000} KB; a config is a few lines")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}{at}: not valid YAML ({getattr(e, 'problem', None) or e})") from None


def read_yaml(path: str | Path) -> Any:
    """A config file's raw sections (checked by ``StudioConfig.from_dict``)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p} is a directory, not a config file")
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{p}: larger than {MAX_YAML_BYTES // 1000} KB; a config is a few lines")
    return parse_yaml(p.read_text(encoding="utf-8", errors="replace"), str(p))


def apply_overrides(raw: Any, assignments: list[str]) -> dict:
    """``section.key=value`` strings onto raw sections; the values are parsed as YAML scalars or lists."""
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections (data, model, ...), got {type(raw).__name__}")
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (raw or {}).items()}
    for item in assignments:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section '{section}'; valid: {', '.join(SECTIONS)}")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"config section '{section}' must be a mapping, got {raw[section]!r}")
        try:
            raw[section][name] = parse_yaml(text) if text.strip() else ""
        except ConfigError:
            raw[section][name] = text
    return raw


def field_help(section: str, name: str) -> str:
    """The help line of ``section.name`` (the UI's tooltip); method.kind's lists the methods registered."""
    text = SECTIONS[section].__pydantic_fields__[name].description
    if (section, name) == ("method", "kind"):
        text += " " + "; ".join(f"{m.name}: {m.help}" for m in METHODS.values()) + "."
    return text
