"""A job that takes more than a few seconds shows how long it should take and how far it is: the handler runs
the job in a thread (the visitor's context copied into it) and, every half second until it ends, moves the
page's progress bar by the time spent against the time this machine measured for such a job before
(engine/timing.py). Without a measurement it says so and counts the seconds; what the job says of itself (a
comparison's "generating with the tuned model") is shown beside the time."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable

from studio.engine.timing import record, said

TICK = 0.5


class Said:
    """What a job says of itself, kept for the next tick (a job's thread must not draw on the page itself)."""

    def __init__(self):
        self.last = ""

    def __call__(self, message: str) -> None:
        self.last = message


def timed(progress, doing: str, expected: float | None, job: Callable, *args, voice: Said | None = None,
          measure: tuple[str, str, float] | None = None, **kwargs):
    """``job(*args, started=..., **kwargs)`` (a ``gate.device_job``) with the progress of ``doing`` ticking: the
    seconds since the job got the device against ``expected`` (None: not measured here yet). ``measure``: (job,
    shape, units) whose time this is, recorded for the next estimate when the job succeeds (for a job that does not
    record its own, as the range test, a comparison and a server start do)."""
    context, box, began = contextvars.copy_context(), {}, []  # began: when the job got the device

    def run() -> None:
        try:
            box["value"] = context.run(job, *args, started=lambda: began.append(time.monotonic()), **kwargs)
        except BaseException as e:  # noqa: BLE001 - raised again in the handler's thread, where it is reported
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True, name=f"studio-{doing}")
    worker.start()
    while worker.is_alive():
        progress(*tick(doing, expected, time.monotonic() - began[0] if began else None, voice.last if voice else ""))
        worker.join(TICK)
    if "error" in box:
        raise box["error"]
    if measure and began:
        record(*measure, time.monotonic() - began[0])
    return box["value"]


def tick(doing: str, expected: float | None, spent: float | None, voice: str = "") -> tuple[float | None, str]:
    """The progress bar's fraction and words: waiting; spent of expected; or spent while measuring."""
    if spent is None:
        return 0.0, "waiting for the device"
    what = f"{doing} ({voice})" if voice else doing
    if expected is None:
        return None, f"{what}: {spent:.0f} s so far (the first on this machine: timing it for next time)"
    if spent <= expected:
        return min(spent / expected, 0.99), f"{what}: {spent:.0f} s of {said(expected)}"
    return 0.99, f"{what}: {spent:.0f} s, longer than the {said(expected)} measured before (a busy machine?)"


def device_job(progress, doing: str, kind: str, shape: str, units: float, job: Callable, *args, **kwargs):
    """``gate.device_job(job, *args, **kwargs)`` timed against this machine's last ones of ``kind`` for ``shape``
    (``units`` of work: its rate times them), and its own time recorded for the next."""
    from studio.engine import gate
    from studio.engine.timing import expected

    return timed(progress, doing, expected(kind, shape, units), gate.device_job, job, *args,
                 measure=(kind, shape, units), **kwargs)
