"""Training jobs in background threads, one on the device at a time.

Contract: ``Job(config).start()`` passes the gate, then returns at once; the job waits its turn in
``DEVICE`` (``studio/engine/device.py``: a real lock with a first-come queue), then its thread supervises a
child process that runs ``train.run`` (``worker.py``; ``isolate=False`` trains in the thread itself).
``snapshot()`` is a cheap copy for pollers (the UI's timer), ``stop()`` takes effect within one optimizer step
(or takes a queued job out of the queue). ``Job`` and ``SweepJob`` share one ``Background`` (a thread, its Stop,
its wait). This module owns the training threads; ``device.py`` owns the device.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from studio.config import StudioConfig
from studio.engine import gate, runs
from studio.engine.device import DEVICE, DeviceQueue
from studio.engine.errors import JobError
from studio.engine.events import Event, Finding, JobSnapshot, Metrics, Notice, Result, StateChanged, TrainingInfo
from studio.engine.train import loop as train
from studio.engine.train import worker


class Background:
    """Work in a background thread that Stop ends: ``start()`` returns at once, ``stop()`` asks, ``wait()``
    joins. A training ``Job`` and a ``SweepJob`` are both one; each has its own ``_main``."""

    thread_name = "studio-job"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self) -> None:
        raise NotImplementedError


class Job(Background):
    thread_name = "studio-train"

    def __init__(self, config: StudioConfig, run_dir: str | Path | None = None, resume: bool = False,
                 queue: DeviceQueue = DEVICE, owner: str | None = None, listener=None, budget=None,
                 isolate: bool = True):
        super().__init__()
        self.config, self.resume, self.queue, self.owner = config, resume, queue, owner
        self.listener = listener  # also told every event (a sweep reports eval losses to Optuna)
        self.budget = budget  # (step, seconds) -> a reason to stop, or None: the deployment's limits
        self._budget_note: str | None = None
        self.isolate = isolate  # train in a child process (the app); False: in this thread (embedders, tests)
        self.worker = None  # the child's Supervisor while it lives
        self._last_step, self._started_at = 0, 0.0
        self.result: train.RunResult | None = None
        self._snap = JobSnapshot("created", run_dir=str(run_dir) if run_dir else None)
        self._lock = threading.Lock()
        self.created = time.time()

    @property
    def state(self) -> str:
        return self._snap.state

    @property
    def run_dir(self) -> str | None:
        return self._snap.run_dir

    @property
    def done(self) -> bool:
        return self._snap.done

    def start(self) -> Job:
        """Through the gate first (every training job: Start, Resume, each sweep trial's final config), then
        into the device queue."""
        gate.admit("train", self.owner, self.owner)
        self.config = gate.check_config(self.config)
        self.queue.enter(self)
        self._snap.state = "queued"
        return super().start()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            s = self._snap
            return replace(s, queue_position=self.queue.position(self), metrics=list(s.metrics),
                           notices=list(s.notices), results=list(s.results), findings=list(s.findings))

    def _main(self) -> None:
        if not self.queue.acquire(self):
            self._set(state="stopped")
            return
        try:
            if self.isolate:
                self.result = worker.supervise(self.config, self._snap.run_dir, self.resume, self.owner,
                                               self._on_event, self._should_stop,
                                               started=lambda sup: setattr(self, "worker", sup), budget=self.budget)
            else:
                self.result = train.run(self.config, self._snap.run_dir, self._on_event, self._should_stop,
                                        self.resume, owner=self.owner)
            self._set(state=self.result.state, error=self._budget_note or self.result.error)
        except Exception as e:  # noqa: BLE001 - bad input or no checkpoint: the job fails, the app lives
            self._set(state="failed", error=train.failure_message(e, self.config))
        finally:
            self.queue.release(self)

    def _should_stop(self) -> bool:
        if self._stop.is_set():
            return True
        if self.budget is not None and self._started_at:
            note = self.budget(self._last_step + 1, time.time() - self._started_at)  # the step now ending
            if note:
                self._budget_note = note
                return True
        return False

    def _set(self, **fields) -> None:
        with self._lock:
            for k, v in fields.items():
                setattr(self._snap, k, v)

    def _on_event(self, event: Event) -> None:
        if self.listener is not None:
            self.listener(event)
        with self._lock:
            s = self._snap
            match event:
                case Metrics(record):
                    s.metrics.append(record)
                    self._last_step = max(self._last_step, record.get("step", 0))
                case Notice(message):
                    s.notices.append(message)
                case Result():
                    s.results.append(event)
                case TrainingInfo():
                    s.info = event
                case Finding():
                    s.findings.append(event)
                case StateChanged(state="running", run_dir=run_dir):
                    s.state, s.run_dir = "running", run_dir or s.run_dir
                    self._started_at = time.time()
                    if self.resume:  # the chart keeps the points before the checkpoint it resumes from
                        s.metrics = runs.read_metrics(Path(s.run_dir))


class SweepJob(Background):
    """A sweep in a background thread: each trial is a ``Job`` in the same device queue, so a sweep waits its
    turn like any run and Stop ends the trial in progress and the sweep."""

    thread_name = "studio-sweep"

    def __init__(self, config: StudioConfig, grid: dict, owner: str | None = None, queue: DeviceQueue = DEVICE,
                 budget=None):
        from studio.engine.train.sweep import Sweep

        super().__init__()
        gate.admit("sweep", owner, owner)
        self.sweep, self.owner, self.queue, self.budget = Sweep(config, grid), owner, queue, budget
        for number, setting in enumerate(self.sweep.settings):  # every trial's own config, before any trains
            gate.check_config(self.sweep.config_for(setting, number))
        self.error: str | None = None
        self.done = False
        self.jobs: list[Job] = []  # its trials' jobs, so "stop every job" and "delete runs" see them

    @property
    def result(self):
        return self.sweep.result

    def _main(self) -> None:
        try:
            self.sweep.run(self._train_one, self._stop.is_set)
        except Exception as e:  # noqa: BLE001 - bad data or a full queue: the sweep fails, the app lives
            self.error = train.failure_message(e, self.sweep.config)
        finally:
            self.done = True

    def _train_one(self, config: StudioConfig, report, should_stop) -> train.RunResult:
        def listener(event: Event) -> None:
            if isinstance(event, Metrics) and event.record.get("eval_loss") is not None:
                report(event.record["step"], event.record["eval_loss"])

        job = Job(config, queue=self.queue, owner=self.owner, listener=listener, budget=self.budget)
        self.jobs.append(job)
        job.start()
        while not job.wait(0.2):
            if should_stop():
                job.stop()
        if job.result is None and self._stop.is_set():  # stopped while waiting for the device
            return train.RunResult(Path(job.run_dir or "."), "stopped")
        if job.result is None:
            snap = job.snapshot()
            raise JobError(snap.error or f"the trial ended {snap.state}")
        return job.result
