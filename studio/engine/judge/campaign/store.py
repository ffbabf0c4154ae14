"""A campaign as stored: its spec (rubric, overlap, rules, fixed at creation), its units, who was shown what and
their answers; made from items (a comparison's answers or an items file) and gold rows. The tables are the
ratings database's (``ratings.MIGRATIONS``)."""

from __future__ import annotations

import json
import random
import secrets
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from studio.engine.errors import DataError, StudioError
from studio.engine.judge.ratings import DIMENSIONS, Ratings

MODES = ("pairwise", "likert", "both")  # pairs of answers; single answers scored 1-5; or both, mixed
SIDES = ("left", "right", "tie")
HOLD_S = 3600  # a unit shown and not answered holds its place this long


ANCHORS = {  # what each score means, per dimension (the rater view shows them as the choices)
    "quality": ("1 wrong or useless", "2 mostly wrong", "3 partly right", "4 right, small flaws", "5 right and clear"),
    "relevance": ("1 off the question", "2 barely on it", "3 partly on it", "4 on it", "5 exactly what was asked"),
    "coherence": ("1 incoherent", "2 hard to follow", "3 followable", "4 clear", "5 clear and well built"),
    "helpfulness": ("1 no help", "2 little help", "3 some help", "4 helpful", "5 fully solves it"),
}


@dataclass(frozen=True)
class Rubric:
    guidelines: str = ""  # the owner's own (markdown); empty: the default text for the campaign's mode

    question: str = "Which answer is better?"
    anchors: dict = field(default_factory=lambda: {d: list(a) for d, a in ANCHORS.items()})


@dataclass(frozen=True)
class Spec:
    """What a campaign is, fixed when it is made."""

    name: str
    mode: str = "pairwise"
    overlap: int = 3  # raters per unit
    per_rater: int = 0  # items a rater is given at most (0: as many as still need raters), so "N of M" is exact
    repeat: float = 0.1  # share of a rater's answers shown to them again
    min_gold: float = 0.7  # gold accuracy below this excludes a rater
    min_seconds: float = 3.0  # a median time per item below this excludes a rater
    speed_min: int = 5  # ... once they gave at least this many answers (a first quick one or two exclude nobody)
    side_p: float = 0.001  # position bias: a first-side share whose binomial test against 50 % is below this
    #                        (strict: it is looked at after every answer)
    side_min: int = 10  # ... once they gave at least this many A/B answers (ties aside)
    flat_min: int = 8  # straight-lining: this many 1-5 answers with the same score on every dimension
    seed: int = 0
    rubric: Rubric = field(default_factory=Rubric)
    publish: bool = False  # a visitor's campaign goes to the deployment's ratings repo only when they chose it

    def rules(self) -> str:
        return (f"Excluded: a rater whose gold accuracy is surely below {self.min_gold:.0%} (its 95 % Wilson "
                "interval entirely under it: a few unlucky gold answers exclude nobody); whose median time per "
                f"item is under {self.min_seconds:g} s (from {self.speed_min} answers on); who picks the first "
                f"side (A) so often or so rarely that a fair coin would do it with probability under "
                f"{self.side_p:g} (binomial test, from {self.side_min} A/B answers on; the sides are drawn at "
                f"random, so a careful rater sits near 50 %); or who gave every one of {self.flat_min} or more "
                "1-5 answers the same score on every dimension. A rater who agrees with the others' majority less "
                "than half the time is flagged, not excluded")

    @classmethod
    def from_dict(cls, raw: dict) -> Spec:
        return cls(**{**raw, "rubric": Rubric(**raw.get("rubric", {}))})


@dataclass(frozen=True)
class Shown:
    """A unit as one rater sees it: sides drawn for them (a single answer is ``left``, ``right`` is empty)."""

    unit: int
    prompt: str
    left: str  # the answers' text
    right: str
    kind: str  # pair | single
    left_model: str  # recorded, never shown
    repeat: bool
    done: int  # items this rater has answered
    total: int  # the most this rater is asked for (``planned``): fixed, so "N of M" never moves under them


def default_guidelines(mode: str) -> str:
    """What raters read when the owner wrote nothing: only what this campaign asks of them."""
    pair = ("For each pair, pick the answer that answers the prompt better: correct first, then helpful and "
            "clear; a tie only when you cannot tell them apart. Which side an answer is on means nothing.")
    single = "For each single answer, score every dimension 1-5 as its labels say."
    return {"pairwise": f"Read the prompt, then both answers. {pair}",
            "likert": f"Read the prompt, then the answer. {single}"}.get(mode, f"Read the prompt, then the "
                                                                            f"answer(s). {pair} {single}")


def guidelines(spec: Spec) -> str:
    return spec.rubric.guidelines.strip() or default_guidelines(spec.mode)


def checks_said(db: Ratings, cid: str) -> str:
    """What raters are told of the checks, only those this campaign has: "; some come back later, and some have
    a known answer" (where they come is never said)."""
    spec, gold = spec_of(db, cid), any(u["gold"] is not None for u in units(db, cid))
    said = (["some come back later"] if spec.repeat > 0 else []) + (["some have a known answer"] if gold else [])
    return "; " + " and ".join(said) if said else ""


def items_from(path: str | Path) -> list[dict]:
    """An items file: JSONL rows of question_id, prompt, model, output (one row per system's answer)."""
    from studio.engine.data.readers import read_records

    p = Path(path)
    recs = read_records(p)
    out = []
    for row, where in zip(recs.rows, recs.where):
        for key in ("question_id", "prompt", "model", "output"):
            if row.get(key) in (None, ""):
                raise DataError(f"{p.name}: {where}, field '{key}': missing (items are question_id, prompt, model, "
                                "output)")
        scores = row.get("scores") if isinstance(row.get("scores"), dict) else {}
        out.append({**{k: str(row[k]) for k in ("question_id", "prompt", "model", "output")}, "scores": scores})
    return out


def items_from_eval(run: Path, name: str) -> list[dict]:
    """A saved comparison's answers: the base model's and the run's, per prompt."""
    from studio.engine import runs
    from studio.engine.judge.pool import question_of

    _, rows, _ = runs.read_eval(run, name)
    sides = (("base", "base"), (run.name, "tuned"))
    return [{"question_id": f"{run.name}/{name}/{i}", "prompt": question_of(r["prompt"]), "model": side,
             "output": str(r[key]), "scores": (r.get("scores") or {}).get(key) or {}}
            for i, r in enumerate(rows) for side, key in sides]


def gold_from(path: str | Path) -> list[dict]:
    """Gold rows: a pair with a known better answer (question_id, model_a, model_b, winner: model_a, model_b
    or tie), or a single answer whose quality score must fall in a range (question_id, model, min, max)."""
    from studio.engine.data.readers import read_records

    p = Path(path)
    recs = read_records(p)
    out = []
    for row, where in zip(recs.rows, recs.where):
        if row.get("model") not in (None, ""):
            try:
                low, high = int(row["min"]), int(row["max"])
            except (KeyError, TypeError, ValueError):
                low = high = 0
            if not 1 <= low <= high <= 5:
                raise DataError(f"{p.name}: {where}, fields 'min' and 'max': expected 1 <= min <= max <= 5, got "
                                f"{row.get('min')!r} and {row.get('max')!r}")
            out.append({"question_id": str(row.get("question_id") or ""), "model": str(row["model"]), "min": low,
                        "max": high})
            continue
        if str(row.get("winner")) not in ("model_a", "model_b", "tie"):
            raise DataError(f"{p.name}: {where}, field 'winner': expected model_a, model_b or tie, got "
                            f"{row.get('winner')!r}")
        out.append({k: str(row.get(k) or "") for k in ("question_id", "model_a", "model_b", "winner")})
    return out


def create(db: Ratings, items: list[dict], spec: Spec, gold: list[dict] = (), owner: str | None = None,
           draft: bool = False) -> str:
    """A campaign of every pair of systems that answered each question (pairwise), of every answer alone to be
    scored 1-5 on each dimension (likert), or both; gold pairs become gold units. ``draft``: nobody rates it until
    its owner opens it (``open_draft``); meanwhile they may see it as raters will and mark gold pairs
    (``mark_gold``)."""
    if spec.mode not in MODES:
        raise StudioError(f"campaign mode {spec.mode!r}: one of {', '.join(MODES)}")
    if spec.overlap < 1 or not 0 <= spec.repeat < 1 or not 0 <= spec.min_gold <= 1 or spec.per_rater < 0:
        raise StudioError("a campaign needs --overlap >= 1, --repeat in [0, 1), --min-gold in [0, 1] and "
                          "--per-rater >= 0")
    by_q: dict[str, dict] = defaultdict(lambda: {"prompt": "", "outputs": {}, "scores": {}})
    for it in items:
        q = by_q[it["question_id"]]
        q["prompt"] = q["prompt"] or it["prompt"]
        q["outputs"][it["model"]] = it["output"]
        if it.get("scores"):
            q["scores"][it["model"]] = it["scores"]
    golden = {(g["question_id"], *sorted((g["model_a"], g["model_b"]))): g for g in gold if "winner" in g}
    ranges = {(g["question_id"], g["model"]): json.dumps({"min": g["min"], "max": g["max"]})
              for g in gold if "model" in g}
    pair_gold_questions = {key[0] for key in golden}
    units = []
    for qid, q in by_q.items():
        systems = sorted(q["outputs"])
        for i, a in enumerate(systems if spec.mode != "likert" else []):
            for b in systems[i + 1:]:
                g = golden.pop((qid, a, b), None)
                winner = None if g is None else _winner(g["winner"], g["model_a"], a)
                measured = {m: q["scores"][m] for m in (a, b) if m in q["scores"]}
                units.append((qid, q["prompt"], a, b, q["outputs"][a], q["outputs"][b], winner, "pair",
                              json.dumps(measured) if measured else None))
        if spec.mode != "pairwise" and qid not in pair_gold_questions:  # a gold pair's question is a check only
            units += [(qid, q["prompt"], m, "", q["outputs"][m], "", ranges.pop((qid, m), None), "single",
                       json.dumps({m: q["scores"][m]}) if m in q["scores"] else None) for m in systems]
    if golden:
        qid, a, b = next(iter(golden))
        raise DataError(f"gold pair {qid}: {a} vs {b} is not among the items (give the answers of both systems, "
                        "and --mode pairwise or both)")
    if ranges:
        qid, m = next(iter(ranges))
        raise DataError(f"gold answer {qid}: {m} is not among the items (and a scored gold answer needs --mode "
                        "likert or both)")
    if not any(u[6] is None for u in units):
        raise DataError("the items give no pair to rate: each question needs answers from at least two systems")
    cid = uuid.uuid4().hex[:12]
    with db.write() as c:
        c.execute("INSERT INTO campaigns (id, name, spec, state, created, owner, draft_key) VALUES "
                  "(?, ?, ?, ?, ?, ?, ?)",
                  (cid, spec.name, json.dumps(asdict(spec)), "draft" if draft else "open", time.time(), owner,
                   secrets.token_urlsafe(16) if draft else None))
        c.executemany("INSERT INTO campaign_units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [(cid, n, *u) for n, u in enumerate(units)])
    return cid


def _winner(said: str, model_a: str, first: str) -> str:
    """model_a / model_b / tie of a row, as a / b / tie of a unit whose first system is ``first``."""
    if said == "tie":
        return "tie"
    return "a" if (said == "model_a") == (model_a == first) else "b"


def spec_of(db: Ratings, cid: str) -> Spec:
    row = db.db.execute("SELECT spec FROM campaigns WHERE id = ?", (cid,)).fetchone()
    if row is None:
        raise StudioError(f"no campaign {cid!r} (studio campaign list shows them)")
    return Spec.from_dict(json.loads(row[0]))


def campaigns(db: Ratings, owner: str | None = None, everyone: bool = True) -> list[dict]:
    """Newest first: all of them, or (``everyone=False``) those ``owner`` made. Nobody owns nothing: with no
    owner (an anonymous visitor) that is none at all, never the ownerless campaigns the operator made from the
    command line or restored from the ratings repo."""
    rows = db.db.execute("SELECT id, name, state, created, owner FROM campaigns ORDER BY created DESC").fetchall()
    found = [dict(zip(("id", "name", "state", "created", "owner"), r)) for r in rows]
    if everyone:
        return found
    return [c for c in found if owner is not None and c["owner"] == owner]


def units(db: Ratings, cid: str) -> list[dict]:
    cols = ("unit", "question_id", "prompt", "model_a", "model_b", "output_a", "output_b", "gold", "kind", "scores")
    rows = db.db.execute(f"SELECT {', '.join(cols)} FROM campaign_units WHERE campaign = ? ORDER BY unit", (cid,))
    return [{**dict(zip(cols, r)), "scores": json.loads(r[-1]) if r[-1] else None} for r in rows.fetchall()]


def answers(db: Ratings, cid: str) -> list[dict]:
    cols = ("rater", "unit", "left_model", "winner", *DIMENSIONS, "seconds", "repeat", "created")
    rows = db.db.execute(f"SELECT {', '.join(cols)} FROM campaign_answers WHERE campaign = ? ORDER BY id", (cid,))
    return [dict(zip(cols, r)) for r in rows.fetchall()]


def copy(db: Ratings, cid: str, name: str | None = None, owner: str | None = None) -> str:
    """A new campaign with the same items, rubric and rules and no answers (a campaign is never edited: close it
    and rate a copy)."""
    spec = spec_of(db, cid)
    spec = replace(spec, name=name or f"{spec.name} (copy)")
    new = uuid.uuid4().hex[:12]
    with db.write() as c:
        c.execute("INSERT INTO campaigns (id, name, spec, created, owner) VALUES (?, ?, ?, ?, ?)",
                  (new, spec.name, json.dumps(asdict(spec)), time.time(), owner))
        c.execute("INSERT INTO campaign_units SELECT ?, unit, question_id, prompt, model_a, model_b, output_a, "
                  "output_b, gold, kind, scores FROM campaign_units WHERE campaign = ?", (new, cid))
    return new


def close(db: Ratings, cid: str) -> None:
    spec_of(db, cid)
    with db.write() as c:
        c.execute("UPDATE campaigns SET state = 'closed' WHERE id = ?", (cid,))


def state_of(db: Ratings, cid: str) -> str:
    """draft (its owner previews it and marks gold; nobody rates), open, or closed."""
    row = db.db.execute("SELECT state FROM campaigns WHERE id = ?", (cid,)).fetchone()
    if row is None:
        raise StudioError(f"no campaign {cid!r} (studio campaign list shows them)")
    return row[0]


def owner_of(db: Ratings, cid: str) -> str | None:
    row = db.db.execute("SELECT owner FROM campaigns WHERE id = ?", (cid,)).fetchone()
    return None if row is None else row[0]


def draft_key(db: Ratings, cid: str) -> str | None:
    """The key a draft's preview link carries (``?campaign=ID&prepare=KEY``): whoever has it previews the draft and
    marks its gold, so only its owner's page shows it; None once the campaign is open."""
    row = db.db.execute("SELECT draft_key, state FROM campaigns WHERE id = ?", (cid,)).fetchone()
    return row[0] if row and row[1] == "draft" else None


def mark_gold(db: Ratings, cid: str, unit: int, winner: str | None) -> None:
    """In a draft: the known answer of a pair (``a`` / ``b`` / ``tie``, of its model_a and model_b), or None to
    make it an ordinary pair again. A gold pair checks raters and is not counted in the results."""
    if winner not in ("a", "b", "tie", None):
        raise StudioError(f"a gold answer is a, b or tie, got {winner!r}")
    with db.write() as c:
        row = c.execute("SELECT state FROM campaigns WHERE id = ?", (cid,)).fetchone()
        if row is None or row[0] != "draft":
            raise StudioError("gold is marked in a draft only: once raters answer, the campaign is fixed")
        kind = c.execute("SELECT kind FROM campaign_units WHERE campaign = ? AND unit = ?", (cid, unit)).fetchone()
        if kind is None or kind[0] != "pair":
            raise StudioError(f"unit {unit} is not a pair of this campaign")
        c.execute("UPDATE campaign_units SET gold = ? WHERE campaign = ? AND unit = ?", (winner, cid, unit))


def open_draft(db: Ratings, cid: str) -> None:
    """A draft opened to raters: from now on it is fixed (gold included)."""
    with db.write() as c:
        row = c.execute("SELECT state FROM campaigns WHERE id = ?", (cid,)).fetchone()
        if row is None or row[0] != "draft":
            raise StudioError("only a draft is opened (this campaign is open or closed already)")
        plain = c.execute("SELECT COUNT(*) FROM campaign_units WHERE campaign = ? AND gold IS NULL",
                          (cid,)).fetchone()[0]
        if not plain:
            raise StudioError("every item is marked gold: leave some for the raters to judge")
        c.execute("UPDATE campaigns SET state = 'open' WHERE id = ?", (cid,))


def preview(db: Ratings, cid: str, index: int, rng: random.Random) -> Shown | None:
    """The ``index``-th unit of a draft as a rater would see it (sides drawn), for its owner to check and mark:
    ``done`` is its place, ``total`` the number of units; None past the last."""
    all_units = units(db, cid)
    if not 0 <= index < len(all_units):
        return None
    u = all_units[index]
    left = rng.choice((u["model_a"], u["model_b"])) if u["kind"] == "pair" else u["model_a"]
    texts = (u["output_a"], u["output_b"]) if left == u["model_a"] else (u["output_b"], u["output_a"])
    return Shown(u["unit"], u["prompt"], *texts, u["kind"], left, False, index, len(all_units))
