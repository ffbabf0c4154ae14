"""What every handler shares: the studio's own errors become one readable message in the page."""

from __future__ import annotations

import functools
import inspect
import os
import re
import secrets
import shutil
from pathlib import Path

import gradio as gr

from studio.config import ConfigError
from studio.engine.errors import StudioError
from studio.engine.markdown import safe_md  # noqa: F401  (the tabs import it from here too)
from studio.policy import policy
from studio.settings import settings

FRIENDLY = (StudioError, ConfigError, ValueError)
CHECK_POOL = settings().check_pool  # visitors' data checks side by side, each in a child
PATH = re.compile(r"(?:/[^\s'\"`:,;()]+){2,}")


def scrub(message: str) -> str:
    """On a public deployment no server path reaches a visitor: a path becomes its last part."""
    return message if policy().shows_server else PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], message)


def deliver(path) -> str:
    """A file for this visitor to download: linked (or copied) into Gradio's own upload cache under a random
    128-bit folder, the only place the web server serves files from. No export folder is served, so no one can
    fetch another visitor's export by guessing its name; an unknown name gets Gradio's one answer for every
    file it does not serve."""
    from gradio.utils import get_upload_folder

    src = Path(path)
    folder = Path(get_upload_folder()) / f"dl-{secrets.token_hex(16)}"
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return str(dst)


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
