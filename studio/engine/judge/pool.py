"""The rating pool: what people are asked to judge, and in which order.

Contract: ``add_comparison(db, run, eval_name)`` turns each example of a saved comparison into an
item with two outputs, ``base`` and the run's, and keeps each side's automatic scores as
``{system: {metric: value}}`` (for human-vs-metric); ``next_pair`` picks an item and two systems
this rater has not judged, from the least-judged pairing so each system meets the others about
equally, sides randomised; ``next_answer`` picks an output this rater has not rated, and their
progress; ``human_vs_metrics`` runs ``human.human_vs_metric`` per source run.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from studio.engine import runs
from studio.engine.judge import human
from studio.engine.judge.ratings import Ratings


@dataclass
class Pair:
    """A blind pair on screen; ``left``/``right`` name the systems and stay server-side until the vote."""
    item: int
    prompt: str
    left: str
    right: str
    left_text: str
    right_text: str
    key: str  # a client key: a double-clicked vote is stored once


@dataclass
class Answer:
    item: int
    system: str
    prompt: str
    text: str


def question_of(prompt) -> str:
    return prompt[-1]["content"] if isinstance(prompt, list) and prompt else str(prompt)


def add_comparison(db: Ratings, run: Path, eval_name: str) -> int:
    """Each example of a saved comparison becomes an item with the base's and the run's outputs."""
    _, rows, _ = runs.read_eval(run, eval_name)
    for i, r in enumerate(rows):
        scores = {"base": r["scores"].get("base", {}), run.name: r["scores"].get("tuned", {})}
        db.add_item(f"{run.name}/{eval_name}/{i}", question_of(r["prompt"]), {"base": r["base"], run.name: r["tuned"]},
                    reference=r["reference"], source=f"{run.name}/{eval_name}", scores=scores)
    return len(rows)


def next_pair(db: Ratings, rater: str, rng: random.Random, keep=None) -> Pair | None:
    """``keep(item)`` limits the pool (a public deployment shows each visitor only their own runs' items)."""
    votes = db.votes()
    mine = {(v["item_id"], v["system_a"], v["system_b"]) for v in votes if v["rater"] == rater}
    seen = Counter((v["system_a"], v["system_b"]) for v in votes)
    options = []
    for it in filter(keep, db.items()) if keep else db.items():
        systems = sorted(s for s, t in it["outputs"].items() if t.strip())
        for i, a in enumerate(systems):
            for b in systems[i + 1:]:
                if (it["id"], a, b) not in mine:
                    options.append((seen[(a, b)], rng.random(), it, a, b))
    if not options:
        return None
    _, _, it, a, b = min(options, key=lambda o: (o[0], o[1]))
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    return Pair(it["id"], it["prompt"], left, right, it["outputs"][left], it["outputs"][right], uuid.uuid4().hex)


def next_answer(db: Ratings, rater: str, rng: random.Random, keep=None) -> tuple[Answer | None, int, int]:
    """An output this rater has not rated (system hidden), and their progress (done, total)."""
    done = {(r["item_id"], r["system"]) for r in db.likert() if r["rater"] == rater}
    todo, total = [], 0
    for it in filter(keep, db.items()) if keep else db.items():
        for system, text in it["outputs"].items():
            if text.strip():
                total += 1
                if (it["id"], system) not in done:
                    todo.append(Answer(it["id"], system, it["prompt"], text))
    return (rng.choice(todo) if todo else None), total - len(todo), total


def human_vs_metrics(db: Ratings, votes: list[dict] | None = None) -> list[dict]:
    """Per source run: that run against base on its own items."""
    items, votes = db.items(), db.votes() if votes is None else votes
    out = []
    for source in sorted({it["source"] for it in items if "/" in it["source"]}):
        run_name = source.split("/")[0]
        mine = [it for it in items if it["source"] == source]
        out += human.human_vs_metric(votes, mine, tuned=run_name, base="base")
    return out


def source_run(item: dict) -> str | None:
    """The run whose comparison made this item (None for imported items)."""
    return item["source"].split("/")[0] if "/" in item.get("source", "") else None


def pseudonym(system: str) -> str:
    """A stable stand-in for a run name a visitor must not see."""
    import hashlib

    return "base" if system == "base" else "run-" + hashlib.sha1(system.encode()).hexdigest()[:6]
