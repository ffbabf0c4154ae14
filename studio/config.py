"""The one schema: every setting of a run, its default, its help line and its checks.

The UI, the CLI and YAML files all read defaults from here. A field's ``help`` metadata is
its one-line docstring (and the UI's tooltip). ``__post_init__`` checks name the bad field,
e.g. ``train.learning_rate must be > 0, got 0``. This module imports nothing from studio.

The training methods are not listed here: each registers itself (``register_method``) from its module in
``studio/engine/methods/``, which the ``studio`` package loads on import; ``method.kind`` must name one, and
each method says which combinations of settings it refuses.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A setting is invalid; the message names the field."""


def _f(default: Any, help: str, choices: tuple | None = None) -> Any:
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


FORMATS = ("auto", "text", "alpaca", "sharegpt", "messages", "prompt_completion", "preference", "kto")
OBJECTIVES = ("auto", "causal_lm", "instruction", "masked_lm", "seq2seq")
SCHEDULERS = ("constant", "linear", "cosine")
TRACKERS = ("tensorboard", "trackio", "mlflow", "wandb")  # the Trainer's own integrations, offline first
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
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


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{name} {rule}, got {value!r}")


def _choice(section: str, obj: Any, name: str) -> None:
    choices = next(f for f in dataclasses.fields(obj) if f.name == name).metadata["choices"]
    value = getattr(obj, name)
    _check(value in choices, f"{section}.{name}", f"must be one of {', '.join(map(str, choices))}", value)


@dataclass
class DataConfig:
    path: str = _f("", "Dataset file: CSV, JSON, JSONL, Parquet or TXT.")
    format: str = _f("auto", "Record format; auto detects it from the columns.", FORMATS)
    columns: dict = _f({}, "Column mapping, studio name -> file column, e.g. {instruction: question}.")
    val_size: float = _f(0.1, "Fraction of records held out for validation, in [0, 1).")
    val_path: str = _f("", "A separate validation file (any format the studio reads); empty = split data.path.")
    max_length: int = _f(512, "Longest tokenized example; longer ones are truncated and counted.")
    pack_documents: bool = _f(True, "Plain text: concatenate documents (EOS between them) into max_length blocks "
                                    "instead of truncating each.")
    limit: int = _f(0, "Use only the first N records (0 = all).")
    system_prompt: str = _f("", "System message added to chat examples that have none.")

    def __post_init__(self) -> None:
        _choice("data", self, "format")
        v = self.val_size
        _check(isinstance(v, (int, float)) and 0 <= v < 1, "data.val_size", "must be in [0, 1)", v)
        _check(isinstance(self.max_length, int) and self.max_length >= 8, "data.max_length",
               "must be an integer >= 8", self.max_length)
        _check(isinstance(self.limit, int) and self.limit >= 0, "data.limit", "must be >= 0", self.limit)
        _check(isinstance(self.columns, dict), "data.columns", "must be a mapping", self.columns)


@dataclass
class ModelConfig:
    name: str = _f("studio-tiny", "Base model: a hub id, a local folder, or studio-tiny (offline).")
    revision: str = _f("", "Hub revision (branch, tag or commit); empty = the default branch.")
    trust_remote_code: bool = _f(False, "Run model code shipped in the repo. Off: only trust it if you read it.")
    allow_pickle: bool = _f(False, "Allow pickle .bin weights when no safetensors exist (unsafe).")
    chat_template: str = _f("", "Jinja chat template overriding the tokenizer's; empty = its own or the default.")

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and self.name.strip() != "", "model.name", "must be set", self.name)


@dataclass
class MethodConfig:
    kind: str = _f("lora", "Training method.", _Registered())
    objective: str = _f("auto", "causal_lm: loss on every token; instruction: loss on responses only; masked_lm: "
                                "BERT-style, 15 % of tokens hidden and predicted (encoders, plain text); seq2seq: "
                                "T5/BART-style, the encoder reads the prompt and the decoder writes the answer "
                                "(encoder-decoders). auto: by data and model.", OBJECTIVES)
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA input, in [0, 1).")
    target_modules: Any = _f("auto", "LoRA targets: auto (per architecture), all-linear, or a list of module names.")
    use_rslora: bool = _f(False, "Rank-stabilised LoRA: scale by alpha / sqrt(r).")
    use_dora: bool = _f(False, "Weight-decomposed LoRA (DoRA).")
    quant_bits: int = _f(4, "QLoRA base precision: 4 (NF4) or 8 bits.", (4, 8))
    quant_type: str = _f("nf4", "4-bit data type.", ("nf4", "fp4"))
    double_quant: bool = _f(True, "Quantize the 4-bit quantization constants too (saves ~0.4 bit/param).")
    compute_dtype: str = _f("auto", "QLoRA compute dtype: auto follows train.precision.", PRECISIONS)
    adalora_init_r: int = _f(12, "AdaLoRA: the rank each layer starts with (the budget is then reallocated).")
    adalora_target_r: int = _f(8, "AdaLoRA: the average rank left at the end of the schedule.")
    num_virtual_tokens: int = _f(20, "prefix / ptuning / prompt: how many virtual tokens are trained.")
    encoder_hidden_size: int = _f(128, "ptuning: hidden size of the prompt encoder (an MLP).")
    reward_model: str = _f("", "rl: the reward model, run:NAME of a method.kind reward run.")
    num_generations: int = _f(4, "rl: answers sampled per prompt; GRPO scores each against the others.")
    max_completion_length: int = _f(32, "rl: longest sampled answer, in tokens.")

    def __post_init__(self) -> None:
        for name in ("kind", "objective", "quant_bits", "quant_type", "compute_dtype"):
            _choice("method", self, name)
        _check(isinstance(self.lora_r, int) and self.lora_r >= 1, "method.lora_r", "must be >= 1", self.lora_r)
        _check(isinstance(self.lora_alpha, (int, float)) and self.lora_alpha > 0, "method.lora_alpha",
               "must be > 0", self.lora_alpha)
        d = self.lora_dropout
        _check(isinstance(d, (int, float)) and 0 <= d < 1, "method.lora_dropout", "must be in [0, 1)", d)
        t = self.target_modules
        ok = (isinstance(t, str) and t.strip() != "") or \
            (isinstance(t, list) and t and all(isinstance(x, str) for x in t))
        _check(ok, "method.target_modules", "must be auto, all-linear or a list of module names", t)
        for name in ("adalora_init_r", "adalora_target_r", "num_virtual_tokens", "encoder_hidden_size",
                     "max_completion_length"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, f"method.{name}", "must be >= 1", v)
        _check(isinstance(self.num_generations, int) and self.num_generations >= 2, "method.num_generations",
               "must be >= 2 (GRPO compares the answers to one prompt)", self.num_generations)
        _check(isinstance(self.reward_model, str), "method.reward_model", "must be run:NAME or empty",
               self.reward_model)
        _check(self.adalora_target_r <= self.adalora_init_r, "method.adalora_target_r",
               f"must be <= method.adalora_init_r ({self.adalora_init_r})", self.adalora_target_r)
        for pkg in METHODS[self.kind].packages:
            if importlib.util.find_spec(pkg) is None:
                raise ConfigError(f"method.kind {self.kind} needs the '{pkg}' package: pip install {pkg}")


@dataclass
class TrainConfig:
    epochs: float = _f(1.0, "Passes over the training set (ignored when max_steps > 0).")
    max_steps: int = _f(0, "Optimizer steps to run; 0 = use epochs.")
    batch_size: int = _f(4, "Examples per device per forward pass.")
    grad_accum: int = _f(1, "Forward passes accumulated per optimizer step.")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    scheduler: str = _f("cosine", "Learning-rate schedule after warmup.", SCHEDULERS)
    warmup_ratio: float = _f(0.05, "Fraction of steps spent warming up linearly from 0.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Clip the gradient norm to this (0 = no clipping).")
    precision: str = _f("auto", "auto: bf16 on GPUs that support it, else fp32 (fp16 on older GPUs).", PRECISIONS)
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass: less memory, ~30% slower.")
    group_by_length: bool = _f(True, "Batch examples of similar length together: less padding, the same examples.")
    packing: bool = _f(False, "Padding-free batches: examples side by side in one row, positions restarting at "
                              "each, attention never crossing them; the same loss as padding.")
    torch_compile: bool = _f(False, "Compile the model with torch.compile: the first steps wait for the compiler, "
                                    "long GPU runs may gain; measure before keeping it.")
    liger_kernel: bool = _f(False, "Liger's fused Triton kernels (CUDA GPU and the liger-kernel package): less "
                                   "memory and more speed on long sequences.")
    seed: int = _f(42, "Seed for data order, splits and initialisation.")
    logging_steps: int = _f(1, "Log metrics every N optimizer steps.")
    eval_steps: int = _f(0, "Evaluate on the validation split every N steps (0 = at the end only).")
    save_steps: int = _f(0, "Save a resumable checkpoint every N steps (0 = only when stopped).")
    save_total_limit: int = _f(2, "Keep at most N checkpoints (0 = all); the best one is always kept.")
    early_stopping_patience: int = _f(0, "Stop after N evaluations without a lower eval loss and keep the best "
                                         "step's weights (0 = off; needs eval_steps).")
    threads: int = _f(0, "CPU threads for torch; 0 = one per usable core (measured: docs/benchmarks.md).")
    report_to: list = _f([], "Trackers that also record the run (tensorboard, trackio, mlflow, wandb; none by "
                             "default). Local and offline unless you configure a remote yourself.", TRACKERS)

    def __post_init__(self) -> None:
        if isinstance(self.report_to, str):  # `--set train.report_to=tensorboard`, or "none"
            self.report_to = [] if self.report_to.strip() in ("", "none") else [self.report_to.strip()]
        _check(isinstance(self.report_to, list) and all(t in TRACKERS for t in self.report_to), "train.report_to",
               f"must be a list of {', '.join(TRACKERS)}", self.report_to)
        lr = self.learning_rate
        ok = isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0
        _check(ok, "train.learning_rate", "must be > 0", lr)
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1, "train.batch_size", "must be >= 1",
               self.batch_size)
        _check(isinstance(self.grad_accum, int) and self.grad_accum >= 1, "train.grad_accum", "must be >= 1",
               self.grad_accum)
        _check(isinstance(self.max_steps, int) and self.max_steps >= 0, "train.max_steps", "must be >= 0",
               self.max_steps)
        e = self.epochs
        _check(isinstance(e, (int, float)) and math.isfinite(e) and e >= 0, "train.epochs", "must be >= 0", e)
        if self.max_steps == 0 and e == 0:
            raise ConfigError("train.epochs and train.max_steps are both 0: set one of them to train at all")
        _choice("train", self, "scheduler")
        _choice("train", self, "precision")
        w = self.warmup_ratio
        _check(isinstance(w, (int, float)) and 0 <= w < 1, "train.warmup_ratio", "must be in [0, 1)", w)
        for name in ("weight_decay", "max_grad_norm"):
            v = getattr(self, name)
            _check(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, f"train.{name}", "must be >= 0", v)
        _check(isinstance(self.logging_steps, int) and self.logging_steps >= 1, "train.logging_steps",
               "must be >= 1", self.logging_steps)
        for name in ("eval_steps", "save_steps", "save_total_limit", "threads", "early_stopping_patience"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 0, f"train.{name}", "must be >= 0", v)
        if self.early_stopping_patience and not self.eval_steps:
            raise ConfigError("train.early_stopping_patience needs train.eval_steps > 0: the evaluations it compares")


@dataclass
class EvalConfig:
    limit: int = _f(50, "Evaluate on at most N held-out examples.")
    max_new_tokens: int = _f(0, "Longest generated answer in tokens; 0 = 1.5x the longest reference (16-256).")
    do_sample: bool = _f(False, "Sample instead of greedy decoding.")
    temperature: float = _f(0.7, "Sampling temperature (with do_sample).")
    top_p: float = _f(0.95, "Nucleus sampling mass (with do_sample).")
    repetition_penalty: float = _f(1.0, "Penalise repeated tokens (1 = off).")
    no_repeat_ngram_size: int = _f(4, "Never repeat an n-gram of this many tokens: a guard against loops (0 = off).")
    seed: int = _f(0, "Seed for sampling and for the bootstrap.")
    batch_size: int = _f(8, "Prompts generated together (left-padded).")
    bertscore: bool = _f(True, "Compute BERTScore (offline: MiniLM from its pip package).")
    extra_metrics: list = _f([], "More metrics: evaluate ids or local metric script folders, scored per example.")
    reward_model: str = _f("", "Score every answer with a reward model (run:NAME of a method.kind reward run): "
                               "mean reward of base and tuned, with intervals and a paired test.")

    def __post_init__(self) -> None:
        for name in ("limit", "batch_size"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, f"eval.{name}", "must be >= 1", v)
        for name in ("max_new_tokens", "no_repeat_ngram_size"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 0, f"eval.{name}", "must be >= 0", v)
        _check(isinstance(self.temperature, (int, float)) and self.temperature > 0, "eval.temperature",
               "must be > 0", self.temperature)
        _check(isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1, "eval.top_p", "must be in (0, 1]",
               self.top_p)
        _check(isinstance(self.repetition_penalty, (int, float)) and self.repetition_penalty > 0,
               "eval.repetition_penalty", "must be > 0", self.repetition_penalty)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "method": MethodConfig, "train": TrainConfig,
            "eval": EvalConfig}


@dataclass
class StudioConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
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
        raw = dict(raw or {})
        kwargs: dict[str, Any] = {}
        run_name = raw.pop("run_name", "")
        for key, value in raw.items():
            if key not in SECTIONS:
                raise ConfigError(f"unknown config section '{key}'; valid: {', '.join([*SECTIONS, 'run_name'])}")
            section_cls = SECTIONS[key]
            value = value or {}
            if not isinstance(value, dict):
                raise ConfigError(f"config section '{key}' must be a mapping, got {value!r}")
            valid = [f.name for f in dataclasses.fields(section_cls)]
            for k in value:
                if k not in valid:
                    raise ConfigError(f"unknown key '{key}.{k}'; valid: {', '.join(valid)}")
            kwargs[key] = section_cls(**{k: _coerce(section_cls, k, v) for k, v in value.items()})
        return cls(**kwargs, run_name=str(run_name or ""))

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


def _coerce(section_cls: type, name: str, value: Any) -> Any:
    """YAML reads 1e-4 as a string and users write 3 for 3.0: coerce to the field's type."""
    default = next(f for f in dataclasses.fields(section_cls) if f.name == name)
    kind = default.type
    try:
        if kind == "float" and isinstance(value, (int, str)) and not isinstance(value, bool):
            return float(value)
        if kind == "int" and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if kind == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    except ValueError:
        pass
    return value


def field_help(section: str, name: str) -> str:
    """The help line of ``section.name`` (the UI's tooltip); method.kind's lists the methods registered."""
    text = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name).metadata["help"]
    if (section, name) == ("method", "kind"):
        text += " " + "; ".join(f"{m.name}: {m.help}" for m in METHODS.values()) + "."
    return text
