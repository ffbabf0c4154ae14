"""The training doctor: reads the metric stream as it arrives and says what is wrong, with evidence and a fix.

Contract: ``Doctor(config, facts).observe(record) -> [Finding]`` for each metrics.jsonl record (new findings
only); ``weights(max_abs, finite, step)`` for a look at the trainable weights; ``at_end(step)`` once training
stops. ``doctor.dead`` is set by a finding that must end the run as ``diverged``. The
advice follows the troubleshooting table of the course the studio follows, and is right for the config
(it never says "enable clipping" when clipping is on).

Detectors and their thresholds (why: docs/doctor.md):
- instability: a loss above 4x the median of the previous 10 and at least 1.0 above it, a grad norm above 10x
  theirs (100x for a reward model, whose new score head bursts early) and above 1.0 (warnings; a loss near 0
  moves by multiples without being unstable). A pairwise loss (reward model, DPO) is -log sigmoid of a margin:
  once most pairs are ranked with room to spare, its batches are heavy-tailed (one misranked pair is the whole
  loss), so its baseline is at least the loss at chance (ln 2), and its gradient norm's at least the clipping
  threshold. RL's gradient norm is not judged for spikes at all: GRPO divides a group's rewards by their spread,
  so a group scored nearly alike gets full-size advantages, and default runs burst to 20 on clipped steps as a
  run at 25x the learning rate did (the reward tells them apart, not the norm);
- dead: the grad norm not finite, or 0 (except in RL, where a step whose samples all score alike has no
  gradient by design), for 3 logged steps in a row, or trainable weights that are not finite or above 1e4 in
  absolute value (errors: the run ends ``diverged``);
- poor convergence: after a quarter of the run (half for a pairwise loss) and at least 12 logged steps, the
  median of the last fifth of losses is less than 5 % below the median of the first fifth (a loss that rose
  says so);
- overfitting: the eval loss rose at two evaluations in a row while the train loss fell;
- reward hacking (RL, at the end): the reward model's score of greedy answers rose (paired interval above 0)
  while their ROUGE-L against the held-out preferred answers fell (interval below 0) to under half of the base
  model's: the policy found what the reward model over-rates, not what people preferred;
- slow training: more than half of the tokens are padding; the CPU run queue is longer than its cores.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field

from studio.config import StudioConfig
from studio.engine import methods
from studio.engine.events import Finding

SPIKE, GRAD_SPIKE, WINDOW = 4.0, 10.0, 10
SPIKE_FLOOR = 1.0  # a spike must also rise this much above the median (nats; grad-norm units)
CHANCE_LOSS = math.log(2)
DEAD_STEPS, WEIGHT_LIMIT = 3, 1e4
CONVERGE_SHARE, CONVERGE_MIN_STEPS, CONVERGE_DROP = 0.25, 12, 0.05
PAIRWISE_CONVERGE_SHARE = 0.5  # DPO starts at ln 2 exactly (policy = reference) and leaves it slowly
PADDING_SHARE = 0.5


@dataclass
class Facts:
    """What the doctor knows about the run beyond its metrics."""
    train_examples: int = 0
    trained_token_share: float = 1.0  # tokens with a label / all tokens
    max_steps: int = 0
    default_lr: float | None = None  # what the studio's defaults give this model and method


@dataclass
class Doctor:
    config: StudioConfig
    facts: Facts = field(default_factory=Facts)
    findings: list[Finding] = field(default_factory=list)
    dead: Finding | None = None
    _losses: list[float] = field(default_factory=list)
    _grads: list[float] = field(default_factory=list)
    _zero_grads: int = 0
    _evals: list[tuple[int, float, float | None]] = field(default_factory=list)
    _said: set = field(default_factory=set)

    # -- the stream ------------------------------------------------------------------------
    def observe(self, m: dict) -> list[Finding]:
        before = len(self.findings)
        step = m.get("step", 0)
        if m.get("eval_loss") is not None:
            self._overfitting(step, m["eval_loss"])
        elif m.get("diverged") or ("loss" in m and m["loss"] is None):
            self._nan(step)
        elif m.get("loss") is not None:
            if self.loss_is_the_goal:
                self._loss(step, m["loss"])
            self._grad(step, m.get("grad_norm"))
            self._slow(step, m)
            share = PAIRWISE_CONVERGE_SHARE if self._pairwise else CONVERGE_SHARE
            if self.loss_is_the_goal and self.facts.max_steps and step >= share * self.facts.max_steps:
                self._convergence(step)
        return self.findings[before:]

    @property
    def loss_is_the_goal(self) -> bool:
        """GRPO's loss is a policy-gradient surrogate around 0, often negative, that need not fall: an RL run is
        judged by its mean reward (charted and measured at the end), so the loss detectors keep quiet for it."""
        return methods.of(self.config).judging.loss_is_the_goal

    @property
    def _pairwise(self) -> bool:
        return methods.of(self.config).judging.pairwise  # -log sigmoid(margin): ln 2 at chance, heavy-tailed

    def weights(self, max_abs: float, finite: bool, step: int) -> list[Finding]:
        before = len(self.findings)
        if not finite or max_abs > WEIGHT_LIMIT:
            what = "not finite" if not finite else f"up to {max_abs:.3g} in absolute value"
            self._die(step, "dead", f"trainable weights are {what} at step {step}")
        return self.findings[before:]

    def at_end(self, step: int) -> list[Finding]:
        before = len(self.findings)
        if self.loss_is_the_goal:
            self._convergence(step, final=True)
        return self.findings[before:]

    def rewarded(self, measured: dict, step: int) -> list[Finding]:
        """An RL run's end measure (``reward.sample_rewards``): a reward that rose while the answers left what
        people preferred is the policy gaming the reward model."""
        before = len(self.findings)
        near, d = measured.get("preferred_rougeL"), measured["difference"]
        if near and d["low"] > 0 and near["difference"]["high"] < 0 and near["tuned"] < 0.5 * near["base"]:
            self._say("reward_hacking", "warning", step,
                      f"the reward model's score of greedy answers rose from {measured['base']['mean']:.2f} to "
                      f"{measured['tuned']['mean']:.2f} while their ROUGE-L against the preferred answers fell from "
                      f"{near['base']:.2f} to {near['tuned']:.2f}: the model learned what the reward model "
                      f"over-rates, not what people preferred",
                      "read a few answers (Chat, Compare); add such answers as rejected examples (blind votes in the "
                      "Rate tab become preference pairs), retrain the reward model, then run RL again",
                      key="reward_hacking")
        return self.findings[before:]

    # -- detectors -------------------------------------------------------------------------
    def _loss(self, step: int, loss: float) -> None:
        recent = self._losses[-WINDOW:]
        median = statistics.median(recent) if len(recent) >= 5 else None
        base = None if median is None else max(median, CHANCE_LOSS) if self._pairwise else median
        if base is not None and loss > SPIKE * base and loss > base + SPIKE_FLOOR:
            against = (f"{loss / base:.1f}x the loss at chance (ln 2)" if base > median else
                       f"{loss / base:.1f}x the median of the previous {len(recent)}")
            self._say("instability", "warning", step, f"loss spiked to {loss:.4g} at step {step}, {against}",
                      self._lr_advice("a loss spike"), key="spike")
        self._losses.append(loss)

    def _grad(self, step: int, grad: float | None) -> None:
        if grad is None:
            return
        if not math.isfinite(grad) or (grad == 0.0 and self.loss_is_the_goal):
            self._zero_grads += 1
            if self._zero_grads >= DEAD_STEPS:
                self._die(step, "dead", f"the gradient norm was {grad} for {self._zero_grads} logged steps in a row "
                          f"(to step {step}): nothing is learning any more")
            return
        self._zero_grads = 0
        if not self.loss_is_the_goal:  # RL: judged by its reward; its gradient norms burst by construction
            return
        recent = self._grads[-WINDOW:]
        limit = methods.of(self.config).judging.grad_spike or GRAD_SPIKE
        median = statistics.median(recent) if len(recent) >= 5 else None
        clip = self.config.train.max_grad_norm
        base = None if median is None else max(median, clip) if self._pairwise and clip > 0 else median
        if base is not None and grad > limit * base and grad > SPIKE_FLOOR:
            against = (f"{grad / base:.0f}x the clipping threshold" if base > median else
                       f"{grad / base:.0f}x the median of the previous {len(recent)}")
            self._say("instability", "warning", step, f"gradient norm exploded to {grad:.3g} at step {step}, "
                      f"{against}", self._lr_advice("exploding gradients"), key="grad")
        self._grads.append(grad)

    def _nan(self, step: int) -> None:
        self._die(step, "instability", f"the loss became NaN or infinite at step {step}")

    def _convergence(self, step: int, final: bool = False) -> None:
        n = len(self._losses)
        if "convergence" in self._said or n < CONVERGE_MIN_STEPS:
            return
        k = max(2, n // 5)
        first, last = statistics.median(self._losses[:k]), statistics.median(self._losses[-k:])
        drop = (first - last) / first if first > 0 else 0.0
        if drop < CONVERGE_DROP:
            moved = f"rose by {-drop:.1%}" if drop < 0 else f"fell only {drop:.1%}"
            self._say("poor_convergence", "warning", step,
                      f"the loss has not fallen meaningfully: it {moved}, from a median of {first:.4g} over the first "
                      f"{k} logged steps to {last:.4g} over the last {k}, by step {step}", self._convergence_advice(),
                      key="convergence")

    def _overfitting(self, step: int, eval_loss: float) -> None:
        train = self._losses[-1] if self._losses else None
        self._evals.append((step, eval_loss, train))
        if len(self._evals) < 3:
            return
        (_, e0, t0), (_, e1, t1), (_, e2, t2) = self._evals[-3:]
        if e2 > e1 > e0 and None not in (t0, t2) and t2 < t0:
            self._say("overfitting", "warning", step,
                      f"eval loss rose at two evaluations in a row ({e0:.4g} -> {e1:.4g} -> {e2:.4g}) while the "
                      f"train loss fell ({t0:.4g} -> {t2:.4g})",
                      "the model is memorising its examples: stop earlier (train.early_stopping_patience keeps the "
                      "best step), train fewer epochs, add data, or regularise (method.lora_dropout, "
                      "train.weight_decay)", key="overfitting")

    def _slow(self, step: int, m: dict) -> None:
        share = m.get("padding_share")
        if share is not None and share > PADDING_SHARE:
            self._say("slow_training", "info", step, f"{share:.0%} of the tokens in step {step}'s batches are "
                      "padding", "group examples of similar length (train.group_by_length) or lower train.batch_size",
                      key="padding")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if load > 1.5 * cores and not _on_gpu():
            self._say("slow_training", "info", step, f"the CPU run queue is {load:.1f} for {cores} cores: another "
                      "process shares them", "set train.threads (or STUDIO_THREADS) to 1, or stop the other work",
                      key="contended")

    # -- advice ----------------------------------------------------------------------------
    def _lr_advice(self, what: str) -> str:
        t = self.config.train
        advice = f"lower train.learning_rate (now {t.learning_rate:g}), e.g. to {t.learning_rate / 10:g}"
        if t.max_grad_norm <= 0:
            advice += "; and enable gradient clipping (train.max_grad_norm 1.0)"
        elif t.max_grad_norm > 10:
            advice += f"; and clip harder (train.max_grad_norm is {t.max_grad_norm:g}; 1.0 is usual)"
        if t.warmup_ratio < 0.03:
            advice += "; warm up longer (train.warmup_ratio 0.05)"
        return f"{what} usually means the learning rate is too high: {advice}"

    def _convergence_advice(self) -> str:
        t, f = self.config.train, self.facts
        causes = []
        if t.learning_rate < 1e-5:
            usual = (f"{f.default_lr:g}, the studio's default for this model and method" if f.default_lr else
                     "2e-4 (LoRA) / 2e-5 (full)")
            causes.append(f"train.learning_rate {t.learning_rate:g} is very low for {self.config.method.kind}: try "
                          f"the LR finder, or {usual}")
        elif self._grads and max(self._grads) > 100:
            causes.append("the gradient norms are huge: the learning rate may be too high")
        if f.trained_token_share < 0.05:
            causes.append(f"only {f.trained_token_share:.1%} of the tokens are trained (response-only masking): "
                          "check the data preview")
        if 0 < f.train_examples < 20:
            causes.append(f"only {f.train_examples} training examples")
        if not causes:
            causes.append("the learning rate may be too low or the run too short: try the LR finder, or more epochs")
        return "likely causes: " + "; ".join(causes)

    # -- bookkeeping -----------------------------------------------------------------------
    def _say(self, kind: str, severity: str, step: int, evidence: str, advice: str, key: str) -> None:
        if key in self._said:
            return
        self._said.add(key)
        self.findings.append(Finding(kind, severity, step, evidence, advice))

    def _die(self, step: int, kind: str, evidence: str) -> None:
        if self.dead is not None:
            return
        advice = self._lr_advice("a run that dies")
        self.dead = Finding(kind, "error", step, evidence, advice)
        self.findings.append(self.dead)


def _on_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
