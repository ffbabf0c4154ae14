"""The operator's controls (in the Train tab): switch training, stop every job, delete runs. Each action
needs ``STUDIO_OPERATOR_TOKEN``, compared in constant time."""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections import defaultdict

import gradio as gr

from studio.engine import runs
from studio.ui.handlers import guard
from studio.ui.state import Context

GUESSES, WINDOW_S = 5, 60.0  # wrong tokens allowed from one address a minute
_wrong: dict[str, list[float]] = defaultdict(list)
_lock = threading.Lock()


def check_token(token: str, request=None) -> None:
    """The operator's token, compared in constant time; five wrong guesses from an address lock it out for a
    minute, the right token included."""
    who = getattr(getattr(request, "client", None), "host", None) or "unknown"
    now = time.time()
    with _lock:
        recent = _wrong[who] = [t for t in _wrong[who] if now - t < WINDOW_S]
        if len(recent) >= GUESSES:
            raise gr.Error("Too many wrong operator tokens from here: wait a minute.", print_exception=False)
    expected = os.environ.get("STUDIO_OPERATOR_TOKEN", "")
    if not expected or not hmac.compare_digest(expected.encode(), (token or "").encode()):
        with _lock:
            _wrong[who].append(now)
        raise gr.Error("Operator token required (set STUDIO_OPERATOR_TOKEN on the server).", print_exception=False)


class Handlers:
    def __init__(self, ctx: Context):
        self.sessions = ctx.sessions

    def stop_all(self, token, request: gr.Request):
        check_token(token, request)
        jobs = [s.job for s in self.sessions.all() if s.job is not None and not s.job.done]
        for job in jobs:
            job.stop()
        checks = sum(s.stop_checks() for s in self.sessions.all())
        return f"Asked {len(jobs)} job(s) to stop" + (f" and stopped {checks} data check(s)." if checks else ".")

    def delete(self, token, names, request: gr.Request):
        check_token(token, request)
        busy = {str(s.job.run_dir) for s in self.sessions.all() if s.job is not None and not s.job.done}
        gone = [n for n in names or [] if runs.delete_run(n, busy)]
        return f"Deleted {len(gone)} run(s)." + ("" if len(gone) == len(names or []) else " Running runs are kept.")

    def training(self, token, allowed, request: gr.Request):
        check_token(token, request)
        self.sessions.training_allowed = bool(allowed)
        return "Training is allowed." if allowed else "Training is switched off."


def wire(t, ctx: Context) -> None:
    """``t`` is the Train tab, which lays the operator's widgets out."""
    h = Handlers(ctx)
    t.op_stop.click(guard(h.stop_all), t.op_token, t.op_status, api_name="operator_stop_all")
    t.op_delete.click(guard(h.delete), [t.op_token, t.pick], t.op_status, api_name="operator_delete_runs")
    t.op_training.input(guard(h.training), [t.op_token, t.op_training], t.op_status, api_name="operator_training")
