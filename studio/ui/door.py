"""The web app's side of the one door (``studio/engine/gate.py``): every event handler of the app, whatever tab
wired it, runs behind ``gate.admit`` with the visitor its request proves (the login on a public deployment,
never anything the client picks). ``install(demo)`` wraps every handler once the app is built, so a tab added
tomorrow passes the door without knowing about it; ``tests/test_public_security.py`` walks every endpoint as a
hostile visitor and checks the audit log names each one.
"""

from __future__ import annotations

import functools
import inspect

from studio.engine import gate
from studio.policy import policy
from studio.ui.identity import visitor_of


def _request():
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


def _admit(action: str, args=(), kwargs=None) -> gate.Visitor:
    owner, key = visitor_of(_request()) if policy().identity_from_login else (None, "local")
    visitor = gate.admit(action, owner, key)
    try:
        gate.check_inputs(action, (*args, *(kwargs or {}).values()))
    except gate.StudioError as e:
        import gradio as gr

        raise gr.Error(str(e), print_exception=False) from None
    return visitor


def through(fn, action: str):
    """``fn`` behind the door: admitted before it runs (generators: the visitor is re-entered at every step,
    which Gradio may run in another thread)."""
    if getattr(fn, "__studio_door__", False):
        return fn
    if inspect.isasyncgenfunction(fn) or inspect.iscoroutinefunction(fn):
        raise TypeError(f"{action}: the studio's handlers are synchronous; an async one would pass the door unchecked")
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streamed(*args, **kwargs):
            visitor = _admit(action, args, kwargs)
            steps = fn(*args, **kwargs)
            while True:
                gate.enter(visitor)
                try:
                    value = next(steps)
                except StopIteration:
                    return
                yield value
        wrapped = streamed
    else:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            _admit(action, args, kwargs)
            with gate.action():  # the visitor's Stop reaches this action at whatever stage it is
                return fn(*args, **kwargs)
    wrapped.__studio_door__ = True
    return wrapped


def install(demo) -> int:
    """Put every event handler of ``demo`` behind the door; returns how many."""
    n = 0
    for block_fn in demo.fns.values():
        if block_fn.fn is not None:
            block_fn.fn = through(block_fn.fn, block_fn.api_name or block_fn.name or "event")
            n += 1
    return n
