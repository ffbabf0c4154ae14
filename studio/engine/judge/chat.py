"""Talking to base and tuned side by side (the Chat tab), with the loading and generation code Compare uses.

Contract: ``CHATS.pair(run)`` loads a run's base and tuned models once and keeps the last few in memory;
``reply(pair, side, history, settings)`` streams one answer (the text so far) of ``base`` or ``tuned`` to
a conversation (role/content messages). A pair is used by one answer at a time: for an adapter run base
and tuned are the same weights with the adapter switched off or on.
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
from studio.engine.judge.generate import Pair, base_of, load_pair, stream

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


def answers(run: Path, histories: dict[str, list[dict]], settings: EvalConfig) -> dict[str, str]:
    """Each side's whole answer to its conversation (``{"base": [...], "tuned": [...]}``): what a public
    deployment runs in a child process, one visitor's message at a time, instead of streaming in the server."""
    out = {}
    for side, history in histories.items():
        out[side] = next(iter(collections.deque(reply(run, side, history, settings), maxlen=1)), "")
    return out


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
