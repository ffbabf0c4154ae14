"""Batched generation and reference perplexity for base and tuned models.

Contract: ``load_pair(run_dir)`` loads the base once; for an adapter run the tuned model is the
same weights with the adapter on, and ``base_of(pair)`` switches it off (no second copy), for a
full fine-tune the base is loaded beside the tuned model. ``generate`` renders chat prompts,
pads on the left, sorts by length so batches waste little padding, and returns the answers in
the input order. ``reference_nll`` scores a reference answer under a model with the same masking
as training (response tokens only).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import EvalConfig, StudioConfig
from .encode import IGNORE, encode_example, render
from .models import load_model, load_tokenizer, resolve_model, resolve_precision


@dataclass
class Pair:
    tuned: object
    base: object | None  # None: the tuned model with its adapter disabled is the base
    tokenizer: object
    config: StudioConfig


def _device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_pair(run_dir: str | Path) -> Pair:
    from .errors import ModelError

    run = Path(run_dir)
    cfg = StudioConfig.load(run / "config.yaml")
    resolved = resolve_model(cfg.model)
    precision = resolve_precision(cfg.train.precision)
    if (run / "adapter" / "adapter_config.json").is_file():
        from peft import PeftModel

        tokenizer = load_tokenizer(resolved, cfg.model)
        base = load_model(resolved, cfg.model, cfg.method, precision, tokenizer)
        tuned = PeftModel.from_pretrained(base, run / "adapter")
        return Pair(_ready(tuned), None, tokenizer, cfg)
    if (run / "model" / "config.json").is_file():
        from dataclasses import replace

        from .models import ResolvedModel

        tokenizer = load_tokenizer(resolved, cfg.model)
        tuned_model = load_model(ResolvedModel(run / "model", "local"), replace(cfg.model, name=str(run / "model")),
                                 cfg.method, precision, tokenizer)
        base = load_model(resolved, cfg.model, cfg.method, precision, tokenizer)
        return Pair(_ready(tuned_model), _ready(base), tokenizer, cfg)
    raise ModelError(f"{run}: no trained adapter/ or model/ to evaluate (did the run complete?)")


def _ready(model):
    model.eval()
    if getattr(model, "hf_device_map", None) is None:
        model.to(_device())
    return model


@contextlib.contextmanager
def base_of(pair: Pair):
    """The base model: a separate one, or the tuned one with its adapter switched off."""
    if pair.base is not None:
        yield pair.base
    else:
        with pair.tuned.disable_adapter():
            yield pair.tuned


def generate(model, tokenizer, prompts: list[list[dict]], s: EvalConfig) -> list[str]:
    texts = [render(tokenizer, p, add_generation_prompt=True) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str] = [""] * len(texts)
    tokenizer.padding_side = "left"
    for start in range(0, len(order), s.batch_size):
        idx = order[start:start + s.batch_size]
        for i, answer in zip(idx, _generate_batch(model, tokenizer, [texts[i] for i in idx], s)):
            out[i] = answer
    return out


def generate_one_by_one(model, tokenizer, prompts: list[list[dict]], s: EvalConfig) -> list[str]:
    """The per-example loop that batching is measured against (bench/generation.py)."""
    return [_generate_batch(model, tokenizer, [render(tokenizer, p, add_generation_prompt=True)], s)[0]
            for p in prompts]


@torch.inference_mode()
def _generate_batch(model, tokenizer, texts: list[str], s: EvalConfig) -> list[str]:
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(_device())
    kw = {"max_new_tokens": s.max_new_tokens, "do_sample": s.do_sample, "repetition_penalty": s.repetition_penalty,
          "pad_token_id": tokenizer.pad_token_id}
    if s.do_sample:
        kw.update(temperature=s.temperature, top_p=s.top_p)
    else:
        kw.update(temperature=None, top_p=None, top_k=None)
    ids = model.generate(**enc, **kw)[:, enc["input_ids"].shape[1]:]
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


@torch.inference_mode()
def reference_nll(model, tokenizer, prompts: list[list[dict]], references: list[str],
                  batch_size: int = 8) -> tuple[list[float], list[int]]:
    """Summed NLL and token count of each reference answer, given its prompt."""
    rows = [encode_example({"messages": [*p, {"role": "assistant", "content": r}]}, tokenizer, "instruction")
            for p, r in zip(prompts, references)]
    nll, counts = [], []
    pad = tokenizer.pad_token_id
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in chunk], device=_device())
        labels = torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in chunk], device=_device())
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk], device=_device())
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
        keep = target != IGNORE
        nll += (loss * keep).sum(1).tolist()
        counts += keep.sum(1).tolist()
    return nll, counts
