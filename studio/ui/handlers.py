"""What every handler shares: the studio's own errors become one readable message in the page."""

from __future__ import annotations

import functools
import inspect

import gradio as gr

from studio.config import ConfigError
from studio.engine.errors import StudioError

FRIENDLY = (StudioError, ConfigError, ValueError)


def guard(fn):
    """Run a handler (or a streaming one); the studio's own errors become one readable message."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)  # keeps the signature, which Gradio reads to pass gr.Request
        def streamed(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except FRIENDLY as e:
                raise gr.Error(str(e), print_exception=False) from None
        return streamed

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FRIENDLY as e:
            raise gr.Error(str(e), print_exception=False) from None
    return wrapped
