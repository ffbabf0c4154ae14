"""The method registry: what a training method is (``Method``, a frozen spec) and the lookups the studio asks
(``get(kind)``, ``of(config)``, ``find``, ``names``). It imports no method: the built-in ones live in
``studio/engine/methods/``, each a module that ``register``s one ``Method`` when the package is imported (the
studio's package does that first), so a module below the methods (the model loader, the run store) asks the
registry without importing them.

Each method declares its own settings as a ``Settings`` class in its module (``kind`` a Literal of its name,
then the ``method.*`` fields it reads, typed); the user's form and YAML stay one flat ``method`` section
(studio/config.py: defaults, help, bounds), and ``settings(method_config)`` is the one place that maps it to the
method's own typed settings, validated as a discriminated union on ``kind``. A method's hooks are given those
settings, so a method reading a field it did not declare fails at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from studio.config import METHODS, ConfigError, register_method


class Settings(BaseModel):
    """A method's own settings: ``kind`` (a Literal of the method's name) and the ``method.*`` fields it reads,
    typed as the flat schema types them (tests/test_methods_registry.py holds them equal)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SUPERVISED = ("causal_lm", "instruction")  # the objectives every method trains; full and lora add the others


@dataclass(frozen=True)
class Judging:
    """How the training doctor reads the method's curves."""

    loss_is_the_goal: bool = True  # False: the loss is a surrogate (GRPO); the run is judged by its reward
    pairwise: bool = False  # a -log sigmoid(margin) loss: ln 2 at chance, heavy-tailed near 0
    grad_spike: float | None = None  # its own gradient-norm spike limit (None: the doctor's)


@dataclass(frozen=True)
class Sizes:
    """What the memory estimate knows when it asks a method for the bytes of its weights."""

    params: int  # every parameter of the base
    linear: int  # of which in linear layers (what quantization shrinks)
    trainable: int
    bytes_per_param: float  # the training precision's
    method: Any  # the method's own Settings


@dataclass(frozen=True)
class Parts:
    """What a method's trainer is built from."""

    model: Any
    args: Any
    tokenizer: Any
    callbacks: list
    train_dataset: Any
    eval_dataset: Any
    prepared: Any  # train.prepare.Prepared


def adapter_weights(s: Sizes) -> float:
    """A frozen base in the training precision, the adapter in fp32."""
    return s.params * s.bytes_per_param + s.trainable * 4


def batch_tokens(cfg) -> int:
    return cfg.train.batch_size * cfg.data.max_length


@dataclass(frozen=True)
class Method:
    name: str
    help: str  # one line: what it trains
    packages: tuple[str, ...] = ("peft",)  # beyond the core install, checked before anything loads
    settings_class: type[Settings] | None = None  # its own settings (None: it reads none; kind only)
    settings: tuple[str, ...] = ()  # the method.* fields it reads, from its settings class (the Model tab's)
    data: str = "supervised"  # supervised | preference | kto | prompts: the records it trains on
    adapter: bool = True  # False: every weight trains and the run saves model/ (full fine-tuning)
    merges: bool = True  # its adapter merges into the base (virtual tokens do not): merged, GGUF, serve, as a base
    score_head: bool = False  # one score a text instead of the LM head (a reward model): scores answers, writes none
    objectives: tuple[str, ...] = SUPERVISED
    cpu_tuned: bool = False  # on a CPU, auto may pick bf16 autocast (engine/precision.py) and compiled layers
    packing: str = ""  # why train.packing is refused ("" = allowed)
    peft_config: Callable | None = None  # (model, its Settings, total steps, task type) -> a PEFT config
    load: Callable | None = None  # (its Settings, precision) -> more from_pretrained arguments
    prepare_model: Callable | None = None  # (model, gradient checkpointing) -> the model, before its adapter
    training_args: Callable | None = None  # (the common arguments, config) -> its trainer's arguments
    trainer: Callable | None = None  # (Parts) -> its trainer; None: the studio's supervised trainer
    callbacks: Callable | None = None  # (config) -> more TrainerCallbacks
    evaluates: bool = True  # has an evaluation loop (GRPO measures its samples instead)
    measure: Callable | None = None  # (trainer, prepared, run, on_event): what the run achieved, at its end
    weights: Callable[[Sizes], float] = adapter_weights  # bytes of weights in training
    tokens: Callable = batch_tokens  # (config) -> tokens in one batch
    judging: Judging = field(default_factory=Judging)
    default_lr: float | None = None  # the practitioner default; None: the LoRA family's
    tags: tuple[str, ...] = ()  # model-card tags beside its name
    refuse: Callable | None = None  # (StudioConfig) -> one line, or None: combinations it cannot train
    order: int = 100  # its place in the Model tab's list

    def __post_init__(self) -> None:
        if self.settings_class is None:  # a method with no settings of its own: its kind alone
            made = create_model(f"{self.name.title().replace('-', '')}Settings", __base__=Settings,
                                kind=(Literal[self.name], self.name))
            object.__setattr__(self, "settings_class", made)
        kind = self.settings_class.model_fields.get("kind")
        if kind is None or kind.annotation != Literal[self.name]:
            raise TypeError(f"{self.settings_class.__name__}.kind must be Literal[{self.name!r}]")
        object.__setattr__(self, "settings", tuple(f for f in self.settings_class.model_fields if f != "kind"))

    @property
    def own_data_order(self) -> bool:
        """Its trainer (TRL's) tokenizes, batches and orders its records itself."""
        return self.data != "supervised"


    def refusal(self, cfg) -> str | None:
        """Why ``cfg`` cannot train with this method, in one line, or None (StudioConfig asks when it is made)."""
        if self.packing and cfg.train.packing:
            return f"train.packing cannot be used with method.kind {self.name}: {self.packing}; turn packing off"
        objective = cfg.method.objective
        if objective not in ("auto", *self.objectives):
            able = [n for n, x in METHODS.items() if objective in x.objectives]
            return f"method.objective {objective} trains with method.kind {' or '.join(able)}, not {self.name}"
        return self.refuse(cfg) if self.refuse else None


def register(method: Method) -> Method:
    register_method(method)
    return method


def get(kind: str) -> Method:
    try:
        return METHODS[kind]
    except KeyError:
        raise ConfigError(f"method.kind must be one of {', '.join(METHODS)}, got {kind!r}") from None


def find(kind: str) -> Method | None:
    """The method of that name, or None (a run made with a method no longer registered)."""
    return METHODS.get(kind)


def names() -> list[str]:
    return list(METHODS)


def of(cfg) -> Method:
    """The method of a StudioConfig."""
    return get(cfg.method.kind)


_UNION: dict[tuple, TypeAdapter] = {}


def _union() -> TypeAdapter:
    """Every registered method's settings as one discriminated union on ``kind`` (made again when a method is
    registered after the last one was made)."""
    classes = tuple(m.settings_class for m in METHODS.values())
    if classes not in _UNION:
        union = classes[0] if len(classes) == 1 else Union[classes]  # noqa: UP007 - a tuple of classes
        _UNION.clear()
        _UNION[classes] = TypeAdapter(Annotated[union, Field(discriminator="kind")])
    return _UNION[classes]


def settings(method_config) -> Settings:
    """The flat ``method`` section as its method's own typed settings: the one place the two meet."""
    cls = get(method_config.kind).settings_class
    values = {name: getattr(method_config, name) for name in cls.model_fields if name != "kind"}
    return _union().validate_python({"kind": method_config.kind, **values})
