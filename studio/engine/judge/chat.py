"""Talking to base and tuned side by side (the Chat tab), with the loading and generation code Compare uses.

Contract: ``CHATS.pair(run)`` loads a run's base and tuned models once and keeps the last few in memory;
``replies(run, histories, settings)`` streams both answers at once (``{"base": text so far, "tuned": ...}``),
each side to its own conversation (role/content messages): a LoRA run answers both in one mixed-adapter batch
of its shared weights, a full fine-tune from its two models in parallel; the other adapter methods (a virtual
token or a scaling vector cannot be switched per row) answer one side after the other. ``reply(run, side,
history, settings)`` streams one side. A pair is used by one message at a time.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from studio.config import EvalConfig
from studio.engine.judge.generate import Pair, base_of, load_pair, stream, stream_sides

CHAT_TOKENS = 128  # an answer's length when eval.max_new_tokens is 0 (no references to size it from)


class PairCache:
    def __init__(self, size: int = 2):
        self.size, self._pairs, self._locks = size, OrderedDict(), {}
        self._lock = threading.Lock()

    def pair(self, run: Path) -> tuple[Pair, threading.Lock]:
        key = str(Path(run).resolve())
        with self._lock:
            if key in self._pairs:
                self._pairs.move_to_end(key)
                return self._pairs[key], self._locks[key]
        loaded = load_pair(run)  # outside the lock: loading takes a while
        with self._lock:
            self._pairs[key], self._locks[key] = loaded, self._locks.get(key, threading.Lock())
            while len(self._pairs) > self.size:
                old, _ = self._pairs.popitem(last=False)
                self._locks.pop(old, None)
            return loaded, self._locks[key]

    def forget(self, run: Path) -> None:
        with self._lock:
            key = str(Path(run).resolve())
            self._pairs.pop(key, None)
            self._locks.pop(key, None)


CHATS = PairCache()


def reply(run: Path, side: str, history: list[dict], settings: EvalConfig) -> Iterator[str]:
    """``side``'s answer to the conversation so far, streamed."""
    pair, lock = CHATS.pair(run)
    if not settings.max_new_tokens:
        settings = replace(settings, max_new_tokens=CHAT_TOKENS)
    with lock, (base_of(pair) if side == "base" else contextlib.nullcontext(pair.tuned)) as model:
        yield from stream(model, pair.tokenizer, history, settings)


def mixable(pair: Pair) -> str | None:
    """The adapter's name when base and tuned can answer in one batch (plain LoRA / QLoRA); None otherwise."""
    if pair.base is not None or not hasattr(pair.tuned, "peft_config"):
        return None
    from peft import PeftType

    name = pair.tuned.active_adapter
    config = pair.tuned.peft_config[name]
    return name if config.peft_type == PeftType.LORA and not getattr(config, "use_dora", False) else None


def replies(run: Path, histories: dict[str, list[dict]], settings: EvalConfig) -> Iterator[dict[str, str]]:
    """Both sides' answers (``histories``: {"base": messages, "tuned": messages}), yielded as they grow."""
    pair, lock = CHATS.pair(run)
    if not settings.max_new_tokens:
        settings = replace(settings, max_new_tokens=CHAT_TOKENS)
    with lock:
        adapter = mixable(pair)
        if adapter is not None:
            yield from stream_sides({side: (pair.tuned, h) for side, h in histories.items()}, pair.tokenizer,
                                    settings, together={"model": pair.tuned, "adapter_names": [
                                        "__base__" if side == "base" else adapter for side in histories]})
        elif pair.base is not None:
            models = {"base": pair.base, "tuned": pair.tuned}
            yield from stream_sides({side: (models[side], h) for side, h in histories.items()}, pair.tokenizer,
                                    settings)
        else:
            texts = dict.fromkeys(histories, "")
            for side, history in histories.items():
                with base_of(pair) if side == "base" else contextlib.nullcontext(pair.tuned) as model:
                    for text in stream(model, pair.tokenizer, history, settings):
                        texts[side] = text
                        yield dict(texts)


def answers(run: Path, histories: dict[str, list[dict]], settings: EvalConfig) -> dict[str, str]:
    """Each side's whole answer to its conversation (``{"base": [...], "tuned": [...]}``): what a public
    deployment runs in a child process, one visitor's message at a time, instead of streaming in the server."""
    last = collections.deque(replies(run, histories, settings), maxlen=1)
    return last[0] if last else dict.fromkeys(histories, "")


def text_of(content) -> str:
    """A chat message's text: Gradio's Chatbot gives earlier messages back as a list of typed parts
    (``[{"type": "text", "text": ...}]``) where the first came as a string."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, (list, tuple)):
        return "".join(text_of(part) for part in content)
    return "" if content is None else str(content)
