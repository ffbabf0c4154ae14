"""What every handler shares: the studio's own errors become one readable message in the page."""

from __future__ import annotations

import functools

import gradio as gr

from ..config import ConfigError
from ..engine.errors import StudioError


def guard(fn):
    """Run a handler; the studio's own errors become one readable message in the page."""
    @functools.wraps(fn)  # keeps the signature, which Gradio reads to pass gr.Request
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StudioError, ConfigError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from None
    return wrapped
