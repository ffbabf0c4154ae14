"""The device queue: one holder of the accelerator (or the CPU's training slot) at a time, the rest waiting in
a fair order: first come, first served between visitors, but a visitor's second waiting job goes after every
other visitor's first (one visitor's four comparisons do not hold up another's one). Training jobs
(``train/jobs.py``) and device jobs (``gate.device_job``: Compare, merge, quantize, the LR finder) hold it
through this module.
"""

from __future__ import annotations

import contextlib
import threading

from studio.engine.errors import JobError
from studio.policy import policy
from studio.settings import settings


def _visitor(job):
    """Whose job it is, for the fair order: a device job's visitor key, a training job's owner."""
    return getattr(job, "visitor", None) or getattr(job, "owner", None)


class DeviceQueue:
    """One holder at a time; the rest wait in a fair order: a job's turn is one after the later of the turn now
    served and its visitor's previous job's turn (start-time fair queuing), ties by arrival."""

    def __init__(self, max_waiting: int = 16):
        self._cond = threading.Condition(threading.Lock())
        self._holder = None
        self._waiting: list = []
        self.max_waiting = max_waiting
        self._turn: dict[int, tuple[int, int]] = {}  # a waiting job's (turn, arrival): the fair order
        self._clock = 0  # the turn of the job that got the device last
        self._last: dict = {}  # visitor -> the turn of their latest job
        self._arrivals = 0

    def enter(self, job) -> None:
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise JobError(f"the training queue is full ({self.max_waiting} waiting); try again later")
            owner = getattr(job, "owner", None)
            if policy().caps and owner and any(getattr(j, "owner", None) == owner for j in [self._holder,
                                                                                              *self._waiting]):
                raise JobError("you already have a job training or waiting: one at a time on this deployment")
            who = _visitor(job)
            turn = max(self._clock, self._last.get(who, 0)) + 1 if who is not None else self._clock + 1
            if who is not None:
                self._last[who] = turn  # their next job comes a turn after this one
            self._arrivals += 1
            self._turn[id(job)] = (turn, self._arrivals)
            self._waiting.append(job)

    def order(self) -> list:
        """The waiting jobs in the order they get the device: by their turn (``enter``), then by arrival."""
        return sorted(self._waiting, key=lambda job: self._turn.get(id(job), 0))

    def next(self):
        line = self.order()
        return line[0] if line else None

    def acquire(self, job) -> bool:
        """Block until ``job`` holds the device; False if it was stopped while waiting."""
        with self._cond:
            while self._holder is not None or self.next() is not job:
                if job.stop_requested:
                    self._waiting.remove(job)
                    self._turn.pop(id(job), None)
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.1)
            self._waiting.remove(job)
            self._clock = self._turn.pop(id(job), (self._clock, 0))[0]
            self._last = {who: t for who, t in self._last.items() if t > self._clock}  # the rest start afresh
            self._holder = job
            return True

    def release(self, job) -> None:
        with self._cond:
            if self._holder is job:
                self._holder = None
            self._cond.notify_all()

    def position(self, job) -> int:
        """0 while running (or done), else 1 for the next in line (in the fair order)."""
        with self._cond:
            line = self.order()
            return line.index(job) + 1 if job in line else 0

    @property
    def busy(self) -> bool:
        return self._holder is not None


DEVICE = DeviceQueue(settings().queue_max)


class Ticket:
    """A holder of the device that is not a training job (an evaluation, say), for ``visitor`` (a key)."""
    stop_requested = False

    def __init__(self, visitor: str | None = None):
        self.visitor = visitor


@contextlib.contextmanager
def exclusive(queue: DeviceQueue = DEVICE, visitor: str | None = None):
    """Hold the device for the block, waiting in line (the fair order) behind training jobs."""
    ticket = Ticket(visitor)
    queue.enter(ticket)
    queue.acquire(ticket)
    try:
        yield
    finally:
        queue.release(ticket)


def exclusive_on_gpu(queue: DeviceQueue = DEVICE):
    """Hold the device where memory is scarce (a GPU); on a CPU a short generation runs beside training."""
    import torch

    return exclusive(queue) if torch.cuda.is_available() else contextlib.nullcontext()
