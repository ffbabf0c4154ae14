"""One call in a child process with limits: what a public deployment does with a visitor's data before trusting it.

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

from studio.engine.errors import StudioError

CHECK_SECONDS = float(os.environ.get("STUDIO_CHECK_SECONDS", "120"))
CHECK_MEMORY_MB = float(os.environ.get("STUDIO_CHECK_MEMORY_MB", "3072"))
POLL_S = 0.05


def context():
    """A fork server where the platform has one (Linux, macOS): a clean process, started once, that forks each
    child, so children keep the priority it was started with; elsewhere a fresh interpreter per child."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([])  # not the app's __main__: each child imports only what it needs
        return ctx
    return mp.get_context("spawn")


def _child(fn, args, owner, conn) -> None:
    from studio.engine import runs
    from studio.settings import quiet_libraries

    quiet_libraries()
    runs.ACTING.set(owner)
    try:
        conn.send(("ok", fn(*args)))
    except StudioError as e:
        conn.send(("error", e))
    except ValueError as e:  # the config's own errors (ConfigError) and the parsers' are ValueErrors
        conn.send(("error", StudioError(str(e).splitlines()[0] if str(e) else type(e).__name__)))
    except MemoryError:
        conn.send(("error", StudioError("the input needed more memory than this deployment allows")))
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
    ctx = context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, args, owner, send), name="studio-check", daemon=True)
    proc.start()
    send.close()
    started, reason = time.time(), None
    try:
        while not recv.poll(POLL_S):
            if not proc.is_alive():
                if recv.poll(0):  # it answered and ended between the two looks
                    break
                reason = f"{what} ended unexpectedly (exit code {proc.exitcode})"
            elif time.time() - started > seconds:
                reason = f"{what} took longer than this deployment's {seconds:g} s and was stopped"
            elif rss_mb(proc.pid) > memory_mb:
                reason = f"{what} needed more than this deployment's {memory_mb:,.0f} MB of memory and was stopped"
            elif should_stop():
                reason = f"{what} was stopped"
            if reason:
                break
        if reason is None:
            try:
                status, value = recv.recv()
            except EOFError:
                status, value = "error", StudioError(f"{what} ended unexpectedly (exit code {proc.exitcode})")
            if status == "error":
                raise value
            return value
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        recv.close()
    raise StudioError(reason)
