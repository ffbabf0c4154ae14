"""Training jobs in background threads, one on the device at a time.

Contract: ``Job(config).start()`` returns at once; the job waits its turn in ``DEVICE`` (a real
lock with a first-come queue), then runs ``train.run`` in its thread. ``snapshot()`` is a cheap
copy for pollers (the UI's timer), ``stop()`` takes effect within one optimizer step (or takes
a queued job out of the queue). This module is the only place that owns threads and the device.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from ..config import StudioConfig
from . import train
from .errors import JobError


class DeviceQueue:
    """One holder at a time, the rest wait first come, first served."""

    def __init__(self, max_waiting: int = 16):
        self._cond = threading.Condition(threading.Lock())
        self._holder: Job | None = None
        self._waiting: list[Job] = []
        self.max_waiting = max_waiting

    def enter(self, job: Job) -> None:
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise JobError(f"the training queue is full ({self.max_waiting} waiting); try again later")
            self._waiting.append(job)

    def acquire(self, job: Job) -> bool:
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

    def release(self, job: Job) -> None:
        with self._cond:
            if self._holder is job:
                self._holder = None
            self._cond.notify_all()

    def position(self, job: Job) -> int:
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


class Job:
    def __init__(self, config: StudioConfig, run_dir: str | Path | None = None, resume: bool = False,
                 queue: DeviceQueue = DEVICE, owner: str | None = None):
        self.config, self.run_dir, self.resume, self.queue, self.owner = config, run_dir, resume, queue, owner
        self.state = "created"
        self.error: str | None = None
        self.metrics: list[dict] = []
        self.notices: list[str] = []
        self.info: dict = {}
        self.result: train.RunResult | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name="studio-train", daemon=True)
        self.created = time.time()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def start(self) -> Job:
        self.queue.enter(self)
        self.state = "queued"
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self.state in ("completed", "stopped", "failed", "diverged")

    def snapshot(self) -> dict:
        with self._lock:
            return {"state": self.state, "queue_position": self.queue.position(self), "error": self.error,
                    "run_dir": str(self.run_dir) if self.run_dir else None, "metrics": list(self.metrics),
                    "notices": list(self.notices), "info": dict(self.info)}

    def _main(self) -> None:
        if not self.queue.acquire(self):
            self.state = "stopped"
            return
        try:
            self.result = train.run(self.config, self.run_dir, self._on_event, self._stop.is_set, self.resume,
                                    owner=self.owner)
            with self._lock:
                self.state, self.error = self.result.state, self.result.error
        except Exception as e:  # noqa: BLE001 - e.g. resume without a checkpoint: the job fails, the app lives
            with self._lock:
                self.state, self.error = "failed", train.failure_message(e, self.config)
        finally:
            self.queue.release(self)

    def _on_event(self, event: dict) -> None:
        with self._lock:
            kind = event.get("kind")
            if kind == "metrics":
                self.metrics.append({k: v for k, v in event.items() if k != "kind"})
            elif kind == "notice":
                self.notices.append(event["message"])
            elif kind == "info":
                self.info.update({k: v for k, v in event.items() if k != "kind"})
            elif kind == "state":
                if event["state"] == "running":
                    self.state = "running"
                    self.run_dir = event.get("run_dir", self.run_dir)
