"""Child processes, watched: the one supervisor of the studio's children (a visitor's data check, a device job,
a training worker), and one call in a child with limits, what a public deployment does with a visitor's data
before trusting it.

``Child(target, args)`` starts ``target(*args, conn)`` in a process from the fork server and reads what it
sends on ``conn``: events as they come, and one ``Reply`` (its last word: ``ok`` with a value, or ``error``).
``limit(seconds, memory_mb)`` says in a line when it ran too long or grew too big; ``kill`` ends it.

Contract: ``isolated(fn, *args, owner=, seconds=, memory_mb=, should_stop=)`` runs ``fn(*args)`` (a module-level,
picklable function) in a clean process forked from the fork server, as ``owner`` (``runs.ACTING``), and returns
what it returns. The studio's own errors come back as themselves; the child is killed, and a ``StudioError``
says why in a line, when it runs past ``seconds``, when its memory (resident, with its children) passes
``memory_mb``, or when ``should_stop()`` turns true (the visitor's Stop, the operator's "stop all"). A crash
of the child is a line too; the web server's own memory and time are never spent on the input.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.engine.errors import StudioError
from studio.settings import settings

CHECK_SECONDS = settings().check_seconds
CHECK_MEMORY_MB = settings().check_memory_mb
POLL_S = 0.05
# What the fork server imports once, so that a child starts with it instead of paying for it (4-8 s of CPU
# per training job or chat message on a small machine: peft also loads bitsandbytes, which loads torch's
# compiler). Libraries only, never the app's __main__ or a module that reads a setting at import; importing
# torch starts no thread and touches no GPU, so forking after it is safe.
PRELOAD = ("torch", "transformers.trainer", "peft", "datasets")


def context():
    """A fork server where the platform has one (Linux, macOS): a clean process, started once, that forks each
    child, so children keep the priority it was started with; elsewhere a fresh interpreter per child."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return mp.get_context("spawn")


@dataclass(frozen=True)
class Reply:
    """A child's last word: ``ok`` and what it returned, or ``error`` and why (an exception or a line)."""

    outcome: str  # "ok", "error" (or, from the supervisor, "alive")
    value: Any


ANON_NICE = settings().anon_nice  # public mode: anonymous visitors' children


class Child:
    """One child process from the fork server, the pipe it talks on, and the limits it is watched by."""

    def __init__(self, target: Callable, args: tuple, name: str, **extra):
        ctx = context()
        self._recv, send = ctx.Pipe(duplex=False)
        self.extra = {k: factory(ctx) for k, factory in extra.items()}  # e.g. a stop Event made in its context
        from studio.engine import runs
        from studio.policy import policy

        p = policy()
        public = not p.lends_operator_token  # the child keeps none of the operator's secrets
        nice = ANON_NICE if p.caps and runs.ACTING.get() is None else 0  # a visitor nobody can name: below all
        self.proc = ctx.Process(target=_enter, args=(target, public, nice, *args, *self.extra.values(), send),
                                name=name, daemon=True)
        self.proc.start()
        send.close()
        self.started = time.time()

    def messages(self, wait: float, most: int = 256):
        """What it sent, as it comes (at most ``most`` now); stops when nothing came for ``wait`` seconds or
        the pipe closed (``self.closed``)."""
        self.closed = False
        for _ in range(most):
            if not self._recv.poll(wait):
                return
            try:
                yield self._recv.recv()
            except EOFError:
                self.closed = True
                return

    def answered(self) -> bool:
        return self._recv.poll(0)

    def limit(self, seconds: float | None, memory_mb: float | None, what: str) -> str | None:
        """Why it must end (one line), or None: past ``seconds``, or its memory (with its children's) past
        ``memory_mb``."""
        if seconds is not None and time.time() - self.started > seconds:
            return f"{what} took longer than this deployment's {seconds:g} s"
        if memory_mb is not None and rss_mb(self.proc.pid) > memory_mb:
            return f"{what} needed more than this deployment's {memory_mb:,.0f} MB of memory"
        return None

    def kill(self, join: float = 5.0) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(join)

    def close(self) -> None:
        self._recv.close()


def _enter(target: Callable, public: bool, nice: int, *args) -> None:
    """Every child's first step, whatever it runs: it works for a visitor, so on a public deployment (as the parent
    saw it) none of the operator's secrets stay in its environment (``policy.visitor_process``); an anonymous
    visitor's child (a data check of a sample) lowers its priority by ``nice`` below training and logged-in work."""
    from studio.policy import visitor_process

    visitor_process(public)
    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)
    target(*args)


def _child(fn, args, owner, conn) -> None:
    from studio.engine import runs
    from studio.settings import quiet_libraries

    quiet_libraries()
    runs.ACTING.set(owner)
    try:
        conn.send(Reply("ok", fn(*args)))
    except StudioError as e:
        conn.send(Reply("error", e))
    except ValueError as e:  # the config's own errors (ConfigError) and the parsers' are ValueErrors
        conn.send(Reply("error", StudioError(str(e).splitlines()[0] if str(e) else type(e).__name__)))
    except MemoryError:
        conn.send(Reply("error", StudioError("the input needed more memory than this deployment allows")))
    finally:
        conn.close()


def rss_mb(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    except psutil.Error:
        return 0.0


def isolated(fn: Callable, *args, owner: str | None = None, seconds: float = CHECK_SECONDS,
             memory_mb: float = CHECK_MEMORY_MB, should_stop: Callable[[], bool] = lambda: False,
             what: str = "the data check"):
    child, reason = Child(_child, (fn, args, owner), "studio-check"), None
    try:
        while reason is None:
            reply = next(child.messages(POLL_S, most=1), None)
            if reply is not None:
                if reply.outcome == "error":
                    raise reply.value
                return reply.value
            if child.closed or not child.proc.is_alive():
                if not child.closed and child.answered():  # it answered and ended between the two looks
                    continue
                child.proc.join(5)
                reason = f"{what} ended unexpectedly (exit code {child.proc.exitcode})"
            elif over := child.limit(seconds, memory_mb, what):
                reason = f"{over} and was stopped"
            elif should_stop():
                reason = f"{what} was stopped"
    finally:
        child.kill()
        child.close()
    raise StudioError(reason)
