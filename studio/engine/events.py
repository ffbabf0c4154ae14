"""The typed seams between a training run, the job that supervises it, and whoever watches (CLI, UI).

A run reports through ``on_event(event)``, each event one of the dataclasses below:
``StateChanged`` (running, completed, stopped, failed, diverged), ``Notice`` (a sentence for the
user), ``Result`` (what the run achieved, measured at its end), ``TrainingInfo`` (what is about to
train) and ``Metrics`` (one ``metrics.jsonl`` record).
``JobSnapshot`` is what a poller sees of a job. All are plain, picklable values, so they can cross
a process boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

FINAL_STATES = ("completed", "stopped", "failed", "diverged", "interrupted")


@dataclass(frozen=True)
class StateChanged:
    state: str
    run_dir: str | None = None
    error: str | None = None
    step: int = 0


@dataclass(frozen=True)
class Notice:
    message: str


@dataclass(frozen=True)
class Result:
    """What a run achieved, measured at its end (a reward model's pair accuracy, an RL run's reward): the
    sentence a person reads and the numbers it says."""
    message: str
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingInfo:
    trainable_params: int
    total_params: int
    precision: str
    threads: int
    format: str
    objective: str
    train_examples: int
    val_examples: int
    truncated: int = 0
    lengths: dict = field(default_factory=dict)
    precision_why: str = ""  # why this precision (train.precision auto decides by the machine and the model)

    def line(self) -> str:
        """The one line that says what trains (the CLI prints it, the Train tab logs it)."""
        return (f"{self.format} data, {self.objective} objective: {self.train_examples} train / "
                f"{self.val_examples} validation examples; {self.trainable_params:,} of {self.total_params:,} "
                f"parameters train ({self.precision}, {self.threads} thread(s))"
                + (f"; precision {self.precision}: {self.precision_why}" if self.precision_why else ""))


class Record(TypedDict, total=False):
    """One line of ``metrics.jsonl``, as the trainer's callback writes it and the doctor, the charts, the CLI and
    the sweep read it. A training record has ``loss``; an evaluation record ``eval_loss`` instead; a non-finite
    value is written as None."""

    step: int
    epoch: float
    loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    grad_norm: float | None
    tokens_per_s: float  # non-padding tokens a second since the last record
    padding_share: float | None  # of the batch slots
    memory_mb: float  # CUDA peak, else the process's RSS
    elapsed_s: float
    eta_s: float | None
    max_steps: int
    accuracy: float  # TRL's: a reward model's pair accuracy and margin; an RL stage's mean reward and its spread
    margin: float
    eval_accuracy: float
    reward: float
    reward_std: float
    best_step: int  # early stopping: the step whose weights were kept, and its eval loss
    best_eval_loss: float
    diverged: bool  # the step whose loss was not finite


@dataclass(frozen=True)
class Metrics:
    """One record of ``metrics.jsonl`` (``Record``)."""
    record: Record


@dataclass(frozen=True)
class Finding:
    """What the training doctor saw: kind, severity (info | warning | error), step, evidence, advice."""
    kind: str
    severity: str
    step: int
    evidence: str
    advice: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "severity": self.severity, "step": self.step, "evidence": self.evidence,
                "advice": self.advice}


Event = StateChanged | Notice | Result | TrainingInfo | Metrics | Finding


@dataclass
class JobSnapshot:
    """A cheap copy of a job's progress for pollers."""
    state: str
    queue_position: int = 0
    error: str | None = None
    run_dir: str | None = None
    metrics: list[dict] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    info: TrainingInfo | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES
