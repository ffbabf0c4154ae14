"""The operator's controls (in the Train tab): switch training, stop every job (training, sweeps, data checks,
comparisons and other device jobs), list and delete every visitor's runs. Each action needs
``STUDIO_OPERATOR_TOKEN``, compared in constant time. The right token always passes at once; wrong guesses are
slowed down, counted per client address only behind a proxy the operator names (``STUDIO_TRUSTED_PROXY``:
then the address that proxy adds to ``X-Forwarded-For``), otherwise for the whole deployment, so a made-up
header never resets the count."""

from __future__ import annotations

import hmac
import threading
import time
from collections import defaultdict

import gradio as gr

from studio.engine import budget, gate, runs
from studio.settings import settings
from studio.ui.handlers import guard
from studio.ui.state import Context

GUESSES, WINDOW_S, MAX_DELAY_S = 5, 60.0, 8.0  # wrong tokens a minute before each further one is slowed
_wrong: dict[str, list[float]] = defaultdict(list)
_slowed: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(1))
_lock = threading.Lock()
TOO_MANY = "Too many wrong operator tokens: wait a minute."


def client(request) -> str:
    """Whose guesses these are: the address a named proxy reports, else one count for everyone."""
    if settings().trusted_proxy:
        forwarded = (getattr(request, "headers", None) or {}).get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        return hops[-1] if hops else getattr(getattr(request, "client", None), "host", None) or "unknown"
    return "everyone"


def check_token(token: str, request=None) -> None:
    expected = settings().operator_token
    if expected and hmac.compare_digest(expected.encode(), (token or "").encode()):
        return  # the operator is never locked out
    who, now = client(request), time.time()
    with _lock:
        recent = _wrong[who] = [t for t in _wrong[who] if now - t < WINDOW_S] + [now]
    over = len(recent) - GUESSES
    if over <= 0:
        raise gr.Error("Operator token required (set STUDIO_OPERATOR_TOKEN on the server).", print_exception=False)
    if _slowed[who].acquire(blocking=False):  # one slowed guess at a time: parallel ones are refused at once
        try:
            time.sleep(min(MAX_DELAY_S, 0.25 * 2 ** over))
        finally:
            _slowed[who].release()
    raise gr.Error(TOO_MANY, print_exception=False)


class Handlers:
    def __init__(self, ctx: Context):
        self.sessions = ctx.sessions

    def stop_all(self, token, request: gr.Request):
        check_token(token, request)
        jobs = [s.job for s in self.sessions.all() if s.job is not None and not s.job.done]
        sweeps = [s.sweep for s in self.sessions.all() if s.sweep is not None and not s.sweep.done]
        for job in [*jobs, *sweeps]:
            job.stop()
        others = gate.stop_all()
        return (f"Asked {len(jobs)} job(s)" + (f" and {len(sweeps)} sweep(s)" if sweeps else "") + " to stop" +
                (f" and stopped {others} data check(s) or device job(s)." if others else "."))

    def busy(self) -> set[str]:
        """Run folders a job or a sweep trial is writing now."""
        jobs = [s.job for s in self.sessions.all() if s.job is not None]
        jobs += [j for s in self.sessions.all() if s.sweep is not None for j in s.sweep.jobs]
        return {str(j.run_dir) for j in jobs if j.run_dir and not j.done}

    def everyone(self, token, request: gr.Request):
        """Every visitor's runs in the picker (with their owner in the table), so the operator can delete any."""
        check_token(token, request)
        infos = runs.list_runs(None, everyone=True)
        table = "| run | owner | state | step |\n|---|---|---|---|\n" + "\n".join(
            f"| `{r.name}` | {r.owner or '-'} | {r.state} | {r.step} |" for r in infos)
        held = [(o, budget.holdings(o)) for o in budget.owners()]  # the ledger the quota reads
        if held:
            table += ("\n\n**What each visitor holds** (quota " f"{budget.USER_QUOTA_MB:,.0f} MB)\n\n"
                      "| visitor | uploads MB | runs MB | exports MB | campaigns |\n|---|---|---|---|---|\n" +
                      "\n".join(f"| {o} | {h['uploads_mb']:,.1f} | {h['runs_mb']:,.1f} | {h['exports_mb']:,.1f} | "
                                f"{h['campaigns']} |" for o, h in held))
        return gr.CheckboxGroup(choices=[r.name for r in infos], value=[]), table

    def delete(self, token, names, request: gr.Request):
        check_token(token, request)
        gone = [n for n in names or [] if runs.delete_run(n, self.busy())]
        return f"Deleted {len(gone)} run(s)." + ("" if len(gone) == len(names or []) else " Running runs are kept.")

    def training(self, token, allowed, request: gr.Request):
        check_token(token, request)
        self.sessions.training_allowed = bool(allowed)
        return "Training is allowed." if allowed else "Training is switched off."


def wire(t, ctx: Context) -> None:
    """``t`` is the Train tab, which lays the operator's widgets out."""
    h = Handlers(ctx)
    t.op_stop.click(guard(h.stop_all), t.op_token, t.op_status, api_name="operator_stop_all", concurrency_limit=None)
    t.op_all.click(guard(h.everyone), t.op_token, [t.pick, t.op_status], api_name="operator_runs",
                   concurrency_limit=None)
    t.op_delete.click(guard(h.delete), [t.op_token, t.pick], t.op_status, api_name="operator_delete_runs",
                      concurrency_limit=None)
    t.op_training.input(guard(h.training), [t.op_token, t.op_training], t.op_status, api_name="operator_training",
                        concurrency_limit=None)
