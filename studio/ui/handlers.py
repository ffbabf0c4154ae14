"""What every handler shares: the studio's own errors become one readable message in the page."""

from __future__ import annotations

import functools
import inspect
import re

import gradio as gr

from studio.config import ConfigError
from studio.engine.errors import StudioError
from studio.settings import public_mode

FRIENDLY = (StudioError, ConfigError, ValueError)
PATH = re.compile(r"(?:/[^\s'\"`:,;()]+){2,}")


def scrub(message: str) -> str:
    """On a public deployment no server path reaches a visitor: a path becomes its last part."""
    return PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], message) if public_mode() else message


def may_train(ctx, s) -> None:
    """Every way to start training asks the same questions (Start, Resume, the sweep, the LR finder)."""
    if not ctx.sessions.training_allowed:
        raise gr.Error("Training is switched off on this deployment.", print_exception=False)
    if s.owner is None:
        raise gr.Error("Log in to train: visitors who are not logged in can look around, but not train.",
                       print_exception=False)
    if s.busy:
        raise gr.Error("Your run is still going: stop it first (one job a visitor).", print_exception=False)


def guard(fn):
    """Run a handler (or a streaming one); the studio's own errors become one readable message."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)  # keeps the signature, which Gradio reads to pass gr.Request
        def streamed(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except FRIENDLY as e:
                raise gr.Error(scrub(str(e)), print_exception=False) from None
        return streamed

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FRIENDLY as e:
            raise gr.Error(scrub(str(e)), print_exception=False) from None
    return wrapped
