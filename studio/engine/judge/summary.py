"""An evaluation's summary as a value: the seam between ``evaluate`` and its readers (CLI, UI, model card).

``summary.json`` keeps the layout docs/architecture.md gives (``base`` / ``tuned``: {metric: {value, ci_low, ci_high}},
``delta``: {metric: {value, ci_low, ci_high, p_value}}, plus win/tie/loss, the got-worse list and how
each metric was computed); ``EvalSummary.to_dict`` writes it and ``from_dict`` reads it back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

LOWER_IS_BETTER = {"perplexity", "pseudo_perplexity"}


@dataclass
class Interval:
    value: float
    ci_low: float
    ci_high: float

    def cell(self) -> str:
        return f"{self.value:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}]"


@dataclass
class Delta(Interval):
    p_value: float = 1.0


@dataclass
class EvalSummary:
    base: dict[str, Interval] = field(default_factory=dict)
    tuned: dict[str, Interval] = field(default_factory=dict)
    delta: dict[str, Delta] = field(default_factory=dict)
    win_tie_loss: dict[str, dict] = field(default_factory=dict)
    got_worse: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    run: str = ""
    eval_set: str = ""
    examples: int = 0
    generation: dict = field(default_factory=dict)
    generation_s: float = 0.0
    note: str | None = None
    dir: str | None = None
    overlap_with_training: dict = field(default_factory=dict)  # exact, near: prompts the run trained on; left_out
    delta_unseen: dict[str, Delta] = field(default_factory=dict)  # the deltas on the prompts it did not train on

    @property
    def metrics(self) -> list[str]:
        return list(self.delta)

    def verdict(self, metric: str, alpha: float = 0.05) -> str:
        """better / worse when the paired test says so, else no clear change. "Better" needs the prompts the run
        did not train on to say so too: an improvement on prompts it trained on may be memory."""
        said = _said(self.delta[metric], metric, alpha)
        if said == "better" and self.seen():
            unseen = self.delta_unseen.get(metric)
            if unseen is None or _said(unseen, metric, alpha) != "better":
                return "better only on prompts it trained on"
        return said

    def seen(self) -> int:
        """How many of the prompts compared were (nearly) among the training prompts."""
        o = self.overlap_with_training
        return 0 if o.get("left_out") else int(o.get("exact") or 0) + int(o.get("near") or 0)

    def to_dict(self) -> dict:
        """What ``summary.json`` holds (``dir`` is where it was read from, not part of it)."""
        out = asdict(self)
        del out["dir"]
        if out["note"] is None:
            del out["note"]
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> EvalSummary:
        known = {f.name for f in fields(cls)}
        s = cls(**{k: v for k, v in raw.items() if k in known and k not in ("base", "tuned", "delta",
                                                                            "delta_unseen")})
        s.base = {m: Interval(**v) for m, v in raw.get("base", {}).items()}
        s.tuned = {m: Interval(**v) for m, v in raw.get("tuned", {}).items()}
        s.delta = {m: Delta(**v) for m, v in raw.get("delta", {}).items()}
        s.delta_unseen = {m: Delta(**v) for m, v in raw.get("delta_unseen", {}).items()}
        return s



def _said(d: Delta, metric: str, alpha: float) -> str:
    if d.p_value >= alpha:
        return "no clear change"
    better = d.value < 0 if metric in LOWER_IS_BETTER else d.value > 0
    return "better" if better else "worse"


def read_eval(run: Path, name: str) -> tuple[EvalSummary, list[dict]]:
    """A saved comparison of a run: its summary and its per-example rows."""
    from studio.engine import runs

    raw, rows, folder = runs.read_eval(run, name)
    summary = EvalSummary.from_dict(raw)
    summary.dir = str(folder)
    return summary, rows
