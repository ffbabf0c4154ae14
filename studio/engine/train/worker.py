"""Training in a child process, supervised: what the app's job thread runs instead of training itself.

Contract: ``supervise(config, run_dir, resume, owner, on_event, should_stop) -> RunResult`` starts a clean
process (forked from a fork server that imported nothing of the app, or spawned where there is none) that
runs ``loop.run`` and sends every event back through a pipe; the caller's ``on_event`` receives them as they
come. When ``should_stop()`` turns true the child is asked to stop (it saves a checkpoint and ends
``stopped``); if it has not ended ``GRACE_S`` later it is killed. A child that dies (a crash, a CUDA or
bitsandbytes abort, an out-of-memory kill) ends the run ``failed`` with the reason, written into the run's
status too, while the app keeps serving; the device's memory goes back with the process. The app's web
server and its GIL are no longer shared with the training loop.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from studio.config import StudioConfig
from studio.engine import isolate, runs
from studio.engine.errors import JobError
from studio.engine.events import Event, Metrics, StateChanged
from studio.engine.isolate import Child, Reply
from studio.engine.isolate import context as _context
from studio.policy import policy

GRACE_S = 60.0  # after Stop, how long the child may take to checkpoint before it is killed
POLL_S = 0.2


def prestart() -> None:
    """Start the fork server now, before the web server lowers its own priority (launch's ``nice``), so that
    training keeps the normal one and outpaces the web traffic on a busy CPU."""
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _child(config: dict, run_dir: str | None, resume: bool, owner: str | None, budget, stop, conn) -> None:
    """The child's whole life: quiet libraries, one run, its result (or the readable reason it could not).
    The deployment's budget is kept here, at the step it names, not a few steps later when the parent hears."""
    from studio.settings import quiet_libraries

    quiet_libraries()
    from studio.engine.train import loop

    cfg = StudioConfig.from_dict(config)
    seen = {"step": 0, "t0": None, "over": None}

    def send(event: Event) -> None:
        if isinstance(event, Metrics):
            seen["step"] = max(seen["step"], event.record.get("step", 0))
        elif isinstance(event, StateChanged) and event.state == "running":
            seen["t0"] = time.time()
        conn.send(event)

    def should_stop() -> bool:
        if budget is not None and seen["t0"] and not seen["over"]:
            seen["over"] = budget(seen["step"] + 1, time.time() - seen["t0"])
        return stop.is_set() or bool(seen["over"])

    try:
        result = loop.run(cfg, run_dir, send, should_stop, resume, owner=owner)
        if result.state == "stopped" and seen["over"] and not stop.is_set():
            result.error = seen["over"]  # why it stopped: the deployment's limit
        conn.send(Reply("ok", result))
    except Exception as e:  # noqa: BLE001 - bad input (before any run directory) or no checkpoint: said in a line
        conn.send(Reply("error", loop.failure_message(e, cfg)))
    finally:
        conn.close()


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        why = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the training process was killed by {name}{why}; resume from the last complete checkpoint"
    return f"the training process ended unexpectedly (exit code {code}); resume from the last complete checkpoint"


ALIVE = Reply("alive", None)  # pump's word for a child still at work


class Supervisor:
    """The training worker: a ``Child`` (isolate.py) running one run, relaying its events, stopped gracefully."""

    def __init__(self, config: StudioConfig, run_dir, resume: bool, owner: str | None, budget=None):
        self.child = Child(_child, (config.to_dict(), str(run_dir) if run_dir else None, resume, owner, budget),
                           "studio-worker", stop=lambda ctx: ctx.Event())
        self.proc, self._stop = self.child.proc, self.child.extra["stop"]
        self.run_dir: Path | None = Path(run_dir) if run_dir else None
        self._asked: float | None = None
        self.started, self.training = time.time(), False  # training: the child has finished preparing

    def pump(self, on_event: Callable[[Event], None]) -> Reply | None:
        """Relay what the child said (a bounded batch); its last word, ``ALIVE``, or None if it died mute."""
        for message in self.child.messages(POLL_S):
            if isinstance(message, Reply):
                return message
            if isinstance(message, StateChanged) and message.run_dir:
                self.run_dir = Path(message.run_dir)
            if isinstance(message, StateChanged) and message.state == "running":
                self.training = True
            on_event(message)
        if self.child.closed:
            return None
        return ALIVE if self.proc.is_alive() else None

    def preparing_too_long(self) -> str | None:
        """On a public deployment, preparation (reading and encoding the visitor's data) has the data check's
        limits: time and memory."""
        if self.training or not policy().isolates_jobs:
            return None
        return self.child.limit(isolate.CHECK_SECONDS, isolate.CHECK_MEMORY_MB, "preparing your data")

    def ask_to_stop(self) -> None:
        if self._asked is None:
            self._asked = time.time()
            self._stop.set()
        elif time.time() - self._asked > GRACE_S and self.proc.is_alive():
            self.proc.kill()


def supervise(config: StudioConfig, run_dir, resume: bool, owner: str | None, on_event: Callable[[Event], None],
              should_stop: Callable[[], bool], started: Callable[[Supervisor], None] = lambda sup: None,
              budget=None):
    """``budget``: a picklable (step, seconds) -> reason-or-None that the child itself keeps."""
    from studio.engine.train.loop import RunResult

    sup = Supervisor(config, run_dir, resume, owner, budget)
    started(sup)
    last = ALIVE
    while last == ALIVE:
        if should_stop() and not sup.training:  # nothing trained, nothing to save: the child goes at once
            sup.proc.kill()
            sup.proc.join(GRACE_S)
            return RunResult(sup.run_dir or Path("."), "stopped", 0, "stopped while preparing: nothing was trained")
        if should_stop():
            sup.ask_to_stop()
        limit = sup.preparing_too_long()
        if limit:
            sup.proc.kill()
            sup.proc.join(GRACE_S)
            raise JobError(f"{limit} and was stopped")
        last = sup.pump(on_event)
    sup.proc.join(GRACE_S)
    sup.child.close()
    if last is not None and last.outcome == "ok":
        return last.value
    if last is not None and last.outcome == "error":
        raise JobError(last.value)
    reason = _death(sup.proc.exitcode)
    if sup.run_dir is not None and runs.Run(sup.run_dir).status_file.is_file():
        status = runs.write_status(sup.run_dir, "failed", error=reason)
        step = status.get("step", 0)
    else:
        step = 0
    on_event(StateChanged("failed", run_dir=str(sup.run_dir) if sup.run_dir else None, error=reason, step=step))
    return RunResult(sup.run_dir or Path("."), "failed", step, reason)
