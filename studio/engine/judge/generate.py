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
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from studio.config import EvalConfig, StudioConfig
from studio.engine import runs
from studio.engine.data.encode import IGNORE, encode_example, render
from studio.engine.models import load_tuned
from studio.engine.precision import resolve as resolve_precision


@dataclass
class Pair:
    tuned: object
    base: object | None  # None: the tuned model with its adapter disabled is the base
    tokenizer: object
    config: StudioConfig


def _device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_pair(run_dir: str | Path) -> Pair:
    from studio.engine.errors import ModelError

    run = runs.Run(run_dir)
    if run.method.score_head:
        raise ModelError(reward_run_note(run.path))
    from studio.engine.judge.masked import is_masked_run

    if is_masked_run(run.path):
        raise ModelError(f"{run.name} is a masked-LM (BERT-style) run: it fills in hidden words instead of writing "
                         "answers; Compare measures it by masked-token accuracy and pseudo-perplexity")
    if run.weights is None:
        raise ModelError(f"{run.path}: no trained adapter/ or model/ to evaluate (did the run complete?)")
    tuned = load_tuned(run, resolve_precision(run.config.train.precision), plain=False, with_base=True)
    return Pair(_ready(tuned.model), _ready(tuned.base) if tuned.base is not None else None, tuned.tokenizer,
                run.config)


def reward_run_note(run: Path) -> str:
    """What a reward run is instead of an answer: it scores answers, and how well it ranks held-out pairs."""
    acc = runs.read_status(run).get("reward_accuracy")
    measured = (f" On {acc['n']} held-out pairs it ranks chosen above rejected {acc['accuracy']:.0%} of the time "
                f"[{acc['low']:.0%}, {acc['high']:.0%}] (chance: 50%).") if acc else ""
    return (f"{run.name} is a reward model: it scores answers instead of writing them.{measured} Use it as "
            f"method.reward_model: run:{run.name} of an rl run, or export its adapter.")


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


MAX_AUTO_TOKENS, MIN_AUTO_TOKENS, NO_REFERENCE_TOKENS = 256, 16, 128


def auto_max_new_tokens(tokenizer, references: list[str]) -> int:
    """1.5x the longest reference in tokens (at least 16, at most 256); 128 without references."""
    refs = [r for r in references if r]
    if not refs:
        return NO_REFERENCE_TOKENS
    longest = max(len(ids) for ids in tokenizer(refs, add_special_tokens=False)["input_ids"])
    return max(MIN_AUTO_TOKENS, min(MAX_AUTO_TOKENS, round(1.5 * longest) + 1))


def stop_ids(model, tokenizer) -> list[int]:
    """Every token that ends an answer: the model's EOS ids, the tokenizer's, and the chat template's
    end-of-turn token (ChatML's <|im_end|>) when the template uses one."""
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    turn = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in (tokenizer.chat_template or "") else None
    if isinstance(turn, int) and turn != tokenizer.unk_token_id:
        ids.append(turn)
    return list(dict.fromkeys(ids))


def generation_kwargs(model, tokenizer, s: EvalConfig, max_new_tokens: int | None = None) -> dict:
    """The settings every generation uses (Compare, Rate's items, Chat): stop at the end of the answer,
    and guard greedy decoding against loops (no repeated n-gram of ``eval.no_repeat_ngram_size``)."""
    kw = {"max_new_tokens": max_new_tokens or s.max_new_tokens or NO_REFERENCE_TOKENS, "do_sample": s.do_sample,
          "repetition_penalty": s.repetition_penalty, "pad_token_id": tokenizer.pad_token_id,
          "eos_token_id": stop_ids(model, tokenizer)}
    if s.no_repeat_ngram_size:
        kw["no_repeat_ngram_size"] = s.no_repeat_ngram_size
    if s.do_sample:
        kw.update(temperature=s.temperature, top_p=s.top_p)
    else:
        kw.update(temperature=None, top_p=None, top_k=None)
    return kw


def generate(model, tokenizer, prompts: list[list[dict]], s: EvalConfig, max_new_tokens: int | None = None,
             **extra) -> list[str]:
    """Answers in the input order; prompts are sorted by length so batches waste little padding."""
    texts = [render(tokenizer, p, add_generation_prompt=True) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str] = [""] * len(texts)
    tokenizer.padding_side = "left"
    kw = {**generation_kwargs(model, tokenizer, s, max_new_tokens), **extra}
    for start in range(0, len(order), s.batch_size):
        idx = order[start:start + s.batch_size]
        for i, answer in zip(idx, _generate_batch(model, tokenizer, [texts[i] for i in idx], kw)):
            out[i] = answer
    return out


def generate_one_by_one(model, tokenizer, prompts: list[list[dict]], s: EvalConfig) -> list[str]:
    """The per-example loop that batching is measured against (bench/generation.py)."""
    kw = generation_kwargs(model, tokenizer, s)
    return [_generate_batch(model, tokenizer, [render(tokenizer, p, add_generation_prompt=True)], kw)[0]
            for p in prompts]


@torch.inference_mode()
def _generate_batch(model, tokenizer, texts: list[str], kw: dict) -> list[str]:
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(_device())
    ids = model.generate(**enc, **kw)
    if not model.config.is_encoder_decoder:  # a decoder's output goes on from its prompt; a decoder of an
        ids = ids[:, enc["input_ids"].shape[1]:]  # encoder-decoder writes the answer alone
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def _chat_ids(model, tokenizer, messages: list[dict], s: EvalConfig) -> list[int]:
    """A conversation's prompt ids, cut to its latest tokens where the model's context holds no more (a long
    prompt costs time and memory too)."""
    ids = tokenizer(render(tokenizer, messages, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    room = max(16, context_length(model, tokenizer) - (s.max_new_tokens or 0))
    return ids[-room:]


class RowStreamer:
    """A streamer for a batch (``TextIteratorStreamer`` takes one row): each row's text so far, put on ``out``
    as ``(row, text)`` whenever it grows; a row ends at its first stop token."""

    def __init__(self, tokenizer, rows: int, stops: list[int], out: queue.Queue, names: list[str]):
        self.tokenizer, self.stops, self.out, self.names = tokenizer, set(stops), out, names
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.done, self.prompt_seen = [False] * rows, False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() hands over the prompt first
            self.prompt_seen = True
            return
        column = value.reshape(len(self.ids), -1)[:, -1].tolist()
        for row, token in enumerate(column):
            if self.done[row]:
                continue
            if token in self.stops:
                self.done[row] = True
                continue
            self.ids[row].append(token)
            self.out.put((self.names[row], self.tokenizer.decode(self.ids[row], skip_special_tokens=True).strip()))

    def end(self) -> None:
        pass


def stream_sides(sides: dict[str, tuple[object, list[dict]]], tokenizer, s: EvalConfig,
                 together: dict | None = None) -> Iterator[dict[str, str]]:
    """Several answers at once, yielded as they grow: ``{side: text so far}`` for ``sides`` = {name: (model,
    messages)}. Separate models answer in parallel threads. ``together`` = {"model": m, "adapter_names": [...]}
    answers every side in one batch of one model instead (PEFT's mixed-adapter batch: ``"__base__"`` is the
    adapter switched off), so base and tuned of a LoRA run grow side by side from shared weights."""
    out: queue.Queue = queue.Queue()
    names = list(sides)
    failed: list[BaseException] = []

    def run(model, rows: list[list[int]], row_names: list[str], **extra):
        try:
            width = max(len(r) for r in rows)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=_device())
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=_device())
            kw = generation_kwargs(model, tokenizer, s)
            streamer = RowStreamer(tokenizer, len(rows), kw["eos_token_id"], out, row_names)
            with torch.inference_mode():
                model.generate(input_ids=ids, attention_mask=mask, **kw, **extra, streamer=streamer)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            failed.append(e)
        finally:
            out.put(None)

    if together is not None:
        model = together["model"]
        rows = [_chat_ids(model, tokenizer, sides[n][1], s) for n in names]
        jobs = [(model, rows, names, {"adapter_names": together["adapter_names"]})]
    else:
        jobs = [(m, [_chat_ids(m, tokenizer, msgs, s)], [n], {}) for n, (m, msgs) in sides.items()]
    threads = [threading.Thread(target=run, args=job[:3], kwargs=job[3], name="studio-chat", daemon=True)
               for job in jobs]
    for t in threads:
        t.start()
    texts, running = dict.fromkeys(names, ""), len(threads)
    while running:
        item = out.get(timeout=600)
        if item is None:
            running -= 1
            continue
        texts[item[0]] = item[1]
        yield dict(texts)
    for t in threads:
        t.join()
    if failed:
        raise failed[0]


def stream(model, tokenizer, messages: list[dict], s: EvalConfig) -> Iterator[str]:
    """One chat answer, yielded as it grows (the text so far), with the same settings as ``generate``."""
    for texts in stream_sides({"answer": (model, messages)}, tokenizer, s):
        yield texts["answer"]


def context_length(model, tokenizer) -> int:
    """How many tokens the model reads at most (its position table; else the tokenizer's own limit)."""
    n = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 10**7 else 2048
    return int(min(n, limit) if n else limit)


@torch.inference_mode()
def reference_nll(model, tokenizer, prompts: list[list[dict]], references: list[str],
                  batch_size: int = 8) -> tuple[list[float], list[int]]:
    """Summed NLL and token count of each reference answer, given its prompt."""
    if model.config.is_encoder_decoder:
        return _seq2seq_nll(model, tokenizer, prompts, references)
    rows = [encode_example({"messages": [*p, {"role": "assistant", "content": r}]}, tokenizer, "instruction")
            for p, r in zip(prompts, references)]
    nll, counts = [], []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        # right-padded (whatever side generation pads on): the answer's positions stay where the labels say
        batch = tokenizer.pad({"input_ids": [ids for ids, _ in chunk]}, padding=True, padding_side="right",
                              return_tensors="pt")
        ids, mask = batch["input_ids"].to(_device()), batch["attention_mask"].to(_device())
        width = ids.shape[1]
        labels = torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in chunk], device=_device())
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -width:-1].float()  # not virtual tokens
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
        keep = target != IGNORE
        nll += (loss * keep).sum(1).tolist()
        counts += keep.sum(1).tolist()
    return nll, counts


def _seq2seq_nll(model, tokenizer, prompts: list[list[dict]], references: list[str]) -> tuple[list[float], list[int]]:
    """The same for an encoder-decoder: the encoder reads the prompt, the decoder is scored on the answer."""
    nll, counts = [], []
    for p, r in zip(prompts, references):
        ids, labels = encode_example({"messages": [*p, {"role": "assistant", "content": r}]}, tokenizer, "seq2seq")
        cut = next(i for i, lab in enumerate(labels) if lab != IGNORE)
        target = torch.tensor([labels[cut:]], device=_device())
        logits = model(input_ids=torch.tensor([ids[:cut]], device=_device()), labels=target).logits.float()
        nll.append(float(torch.nn.functional.cross_entropy(logits[0], target[0], reduction="sum")))
        counts.append(target.shape[1])
    return nll, counts
