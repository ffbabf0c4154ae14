"""The operator's controls (in the Train tab): switch training, stop every job, delete runs. Each action
needs ``STUDIO_OPERATOR_TOKEN``, compared in constant time."""

from __future__ import annotations

import hmac
import os

import gradio as gr

from studio.engine import runs
from studio.ui.handlers import guard
from studio.ui.state import Context


def check_token(token: str) -> None:
    expected = os.environ.get("STUDIO_OPERATOR_TOKEN", "")
    if not expected or not hmac.compare_digest(expected.encode(), (token or "").encode()):
        raise gr.Error("Operator token required (set STUDIO_OPERATOR_TOKEN on the server).", print_exception=False)


class Handlers:
    def __init__(self, ctx: Context):
        self.sessions = ctx.sessions

    def stop_all(self, token):
        check_token(token)
        jobs = [s.job for s in self.sessions.all() if s.job is not None and not s.job.done]
        for job in jobs:
            job.stop()
        return f"Asked {len(jobs)} job(s) to stop."

    def delete(self, token, names):
        check_token(token)
        busy = {str(s.job.run_dir) for s in self.sessions.all() if s.job is not None and not s.job.done}
        gone = [n for n in names or [] if runs.delete_run(n, busy)]
        return f"Deleted {len(gone)} run(s)." + ("" if len(gone) == len(names or []) else " Running runs are kept.")

    def training(self, token, allowed):
        check_token(token)
        self.sessions.training_allowed = bool(allowed)
        return "Training is allowed." if allowed else "Training is switched off."


def wire(t, ctx: Context) -> None:
    """``t`` is the Train tab, which lays the operator's widgets out."""
    h = Handlers(ctx)
    t.op_stop.click(guard(h.stop_all), t.op_token, t.op_status, api_name="operator_stop_all")
    t.op_delete.click(guard(h.delete), [t.op_token, t.pick], t.op_status, api_name="operator_delete_runs")
    t.op_training.input(guard(h.training), [t.op_token, t.op_training], t.op_status, api_name="operator_training")
