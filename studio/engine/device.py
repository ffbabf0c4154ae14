"""The device queue: one holder of the accelerator (or the CPU's training slot) at a time, the rest waiting first
come, first served. Training jobs (``train/jobs.py``) and device jobs (``gate.device_job``: Compare, merge,
quantize, the LR finder) hold it through this module.
"""

from __future__ import annotations

import contextlib
import os
import threading

from studio.engine.errors import JobError
from studio.settings import public_mode


class DeviceQueue:
    """One holder at a time, the rest wait first come, first served."""

    def __init__(self, max_waiting: int = 16):
        self._cond = threading.Condition(threading.Lock())
        self._holder = None
        self._waiting: list = []
        self.max_waiting = max_waiting

    def enter(self, job) -> None:
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise JobError(f"the training queue is full ({self.max_waiting} waiting); try again later")
            owner = getattr(job, "owner", None)
            if public_mode() and owner and any(getattr(j, "owner", None) == owner for j in [self._holder,
                                                                                              *self._waiting]):
                raise JobError("you already have a job training or waiting: one at a time on this deployment")
            self._waiting.append(job)

    def acquire(self, job) -> bool:
        """Block until ``job`` holds the device; False if it was stopped while waiting."""
        with self._cond:
            while self._holder is not None or self._waiting[0] is not job:
                if job.stop_requested:
                    self._waiting.remove(job)
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.1)
            self._waiting.pop(0)
            self._holder = job
            return True

    def release(self, job) -> None:
        with self._cond:
            if self._holder is job:
                self._holder = None
            self._cond.notify_all()

    def position(self, job) -> int:
        """0 while running (or done), else 1 for the next in line."""
        with self._cond:
            return self._waiting.index(job) + 1 if job in self._waiting else 0

    @property
    def busy(self) -> bool:
        return self._holder is not None


DEVICE = DeviceQueue(int(os.environ.get("STUDIO_QUEUE_MAX", "16")))


class Ticket:
    """A holder of the device that is not a training job (an evaluation, say)."""
    stop_requested = False


@contextlib.contextmanager
def exclusive(queue: DeviceQueue = DEVICE):
    """Hold the device for the block, waiting in line behind training jobs."""
    ticket = Ticket()
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
