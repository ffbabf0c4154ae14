"""Rating campaigns: a frozen set of pairs, a rubric, k raters per pair, gold checks, planned repeats, and
exclusion rules fixed at creation, so that what a group of raters said can be published with what was
excluded and why.

Contract (all in the studio's ratings database, ``Ratings``):
- ``create(db, items, ...) -> id``: items are one row per system's answer (question_id, prompt, model, output);
  each question gives a unit per pair of systems that answered it; gold rows (question_id, model_a, model_b,
  winner) become gold units, shown unannounced; the rubric, overlap, repeat share and exclusion rules are
  frozen with it (``Spec``). A campaign is never edited, only closed or copied.
- ``next_unit(db, id, rater)``: what this rater sees next: a gold unit about one in ``GOLD_EVERY``, a planned
  repeat of one they answered (about ``repeat`` of their answers), else the unit with the fewest raters among
  those they have not seen and that still need raters; sides are drawn at random and recorded. None: done.
- ``answer(db, id, rater, unit, side)``: left, right or tie, timed from when the unit was shown.
- ``quality(db, id)``: per rater: items, gold accuracy (with its Wilson interval), self-consistency,
  agreement with the others (leave-one-out majority), median seconds per item, excluded and why. A rater is
  excluded when their gold accuracy is surely below ``min_gold`` (the interval's top under it: a few unlucky
  gold answers out of six exclude nobody) or their median time per item is under ``min_seconds``.
- ``leaderboard(db, id, all_raters=False)``: Bradley-Terry with bootstrap intervals (``human.leaderboard``)
  on the first answers of units (no gold, no repeats), without the excluded raters unless asked.
- ``import_battles(db, id, file)``: Chatbot Arena rows (question_id, model_a, model_b, winner, judge,
  optional tstamp and seconds) as the campaign's answers.
- ``export(db, id, out)`` / ``import_export(db, folder)``: the campaign as a Hugging Face dataset folder
  (answers.parquet and .jsonl, units.jsonl, campaign.json, a README dataset card) and back, exactly.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from collections import Counter, OrderedDict, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from studio.engine.errors import DataError, StudioError
from studio.engine.judge.human import wilson
from studio.engine.judge.ratings import DIMENSIONS, Ratings
from studio.engine.markdown import safe_md

MODES = ("pairwise", "likert", "both")  # pairs of answers; single answers scored 1-5; or both, mixed
SIDES = ("left", "right", "tie")
GOLD_EVERY = 5  # about one item in five is a gold check while gold units remain
HOLD_S = 3600  # a unit shown and not answered holds its place this long
SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL,
                                      state TEXT NOT NULL DEFAULT 'open', created REAL NOT NULL, owner TEXT);
CREATE TABLE IF NOT EXISTS campaign_units (campaign TEXT NOT NULL REFERENCES campaigns(id), unit INTEGER NOT NULL,
                                           question_id TEXT NOT NULL, prompt TEXT NOT NULL, model_a TEXT NOT NULL,
                                           model_b TEXT NOT NULL, output_a TEXT NOT NULL, output_b TEXT NOT NULL,
                                           gold TEXT, kind TEXT NOT NULL DEFAULT 'pair', scores TEXT,
                                           PRIMARY KEY (campaign, unit));
CREATE TABLE IF NOT EXISTS campaign_shown (campaign TEXT NOT NULL, rater TEXT NOT NULL, unit INTEGER NOT NULL,
                                           left_model TEXT NOT NULL, repeat INTEGER NOT NULL, shown REAL NOT NULL,
                                           PRIMARY KEY (campaign, rater, unit, repeat));
CREATE TABLE IF NOT EXISTS campaign_answers (id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, rater TEXT NOT NULL,
                                             unit INTEGER NOT NULL, left_model TEXT NOT NULL,
                                             winner TEXT CHECK (winner IN ('a', 'b', 'tie')),
                                             quality INTEGER, relevance INTEGER, coherence INTEGER,
                                             helpfulness INTEGER, seconds REAL, repeat INTEGER NOT NULL,
                                             created REAL NOT NULL, UNIQUE (campaign, rater, unit, repeat))
"""


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


def _ensure(db: Ratings) -> None:
    with db.write() as c:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                c.execute(statement)


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

    _, rows = runs.read_eval(run, name)
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


def create(db: Ratings, items: list[dict], spec: Spec, gold: list[dict] = (), owner: str | None = None) -> str:
    """A campaign of every pair of systems that answered each question (pairwise), of every answer alone to be
    scored 1-5 on each dimension (likert), or both; gold pairs become gold units."""
    if spec.mode not in MODES:
        raise StudioError(f"campaign mode {spec.mode!r}: one of {', '.join(MODES)}")
    if spec.overlap < 1 or not 0 <= spec.repeat < 1 or not 0 <= spec.min_gold <= 1:
        raise StudioError("a campaign needs --overlap >= 1, --repeat in [0, 1) and --min-gold in [0, 1]")
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
    _ensure(db)
    with db.write() as c:
        c.execute("INSERT INTO campaigns (id, name, spec, created, owner) VALUES (?, ?, ?, ?, ?)",
                  (cid, spec.name, json.dumps(asdict(spec)), time.time(), owner))
        c.executemany("INSERT INTO campaign_units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [(cid, n, *u) for n, u in enumerate(units)])
    return cid


def _winner(said: str, model_a: str, first: str) -> str:
    """model_a / model_b / tie of a row, as a / b / tie of a unit whose first system is ``first``."""
    if said == "tie":
        return "tie"
    return "a" if (said == "model_a") == (model_a == first) else "b"


def spec_of(db: Ratings, cid: str) -> Spec:
    _ensure(db)
    row = db.db.execute("SELECT spec FROM campaigns WHERE id = ?", (cid,)).fetchone()
    if row is None:
        raise StudioError(f"no campaign {cid!r} (studio campaign list shows them)")
    return Spec.from_dict(json.loads(row[0]))


def campaigns(db: Ratings, owner: str | None = None, everyone: bool = True) -> list[dict]:
    """Newest first: all of them, or (``everyone=False``) those ``owner`` made. Nobody owns nothing: with no
    owner (an anonymous visitor) that is none at all, never the ownerless campaigns the operator made from the
    command line or restored from the ratings repo."""
    _ensure(db)
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


def next_unit(db: Ratings, cid: str, rater: str, rng: random.Random | None = None,
              at: float | None = None) -> Shown | None:
    """What ``rater`` sees next (the same unit again until they answer it), or None when they are done.
    ``at``: the time it is shown (now; a simulation passes its own clock)."""
    spec, rng, at = spec_of(db, cid), rng or random.Random(), time.time() if at is None else at
    out = excluded(db, cid)  # their places reopen for this rater
    with db.write() as c:
        if c.execute("SELECT state FROM campaigns WHERE id = ?", (cid,)).fetchone()[0] != "open":
            return None
        pending = c.execute("SELECT unit, left_model, repeat FROM campaign_shown s WHERE campaign = ? AND rater = ? "
                            "AND NOT EXISTS (SELECT 1 FROM campaign_answers a WHERE a.campaign = s.campaign AND "
                            "a.rater = s.rater AND a.unit = s.unit AND a.repeat = s.repeat)", (cid, rater)).fetchone()
        if pending is None:
            if rater in out:  # an excluded rater is done: their answers no longer count, their items reopen
                return None
            pending = _assign(c, cid, rater, spec, rng, at, out)
            if pending is None:
                return None
            c.execute("INSERT INTO campaign_shown VALUES (?, ?, ?, ?, ?, ?)", (cid, rater, *pending, at))
        unit, left, repeat = pending
        u = c.execute("SELECT prompt, model_a, model_b, output_a, output_b, kind FROM campaign_units WHERE "
                      "campaign = ? AND unit = ?", (cid, unit)).fetchone()
        done = c.execute("SELECT COUNT(*) FROM campaign_answers WHERE campaign = ? AND rater = ?",
                         (cid, rater)).fetchone()[0]
    prompt, a, b, out_a, out_b, kind = u
    left_text, right_text = (out_a, out_b) if left == a else (out_b, out_a)
    return Shown(unit, prompt, left_text, right_text, kind, left, bool(repeat), done, max(planned(db, cid), done + 1))


def _open_units(c, cid: str, rater: str, spec: Spec, now: float, out: set[str] = frozenset()
                ) -> tuple[list[int], Counter]:
    """(the items this rater may still be given: not seen by them, not gold, short of raters; raters per item,
    holds of the last ``HOLD_S`` seconds included). The excluded raters (``out``) hold no place: their items
    reopen for the next raters."""
    rows = c.execute("SELECT unit FROM campaign_units WHERE campaign = ? AND gold IS NULL", (cid,)).fetchall()
    seen = {u for (u,) in c.execute("SELECT unit FROM campaign_shown WHERE campaign = ? AND rater = ?", (cid, rater))}
    taken = Counter(u for (u, who) in c.execute(
        "SELECT unit, rater FROM campaign_shown WHERE campaign = ? AND repeat = 0 AND (shown > ? OR EXISTS (SELECT 1 "
        "FROM campaign_answers a WHERE a.campaign = campaign_shown.campaign AND a.rater = campaign_shown.rater AND "
        "a.unit = campaign_shown.unit AND a.repeat = 0))", (cid, now - HOLD_S)) if who not in out)
    return [u for (u,) in rows if u not in seen and taken[u] < spec.overlap], taken


def planned(db: Ratings, cid: str) -> int:
    """How many answers a rater is asked for at most: every item once, the repeats the campaign plans and every
    gold check. Fixed when the campaign is made, so a rater's "N of M" never moves under them (a rater the others
    leave less to finishes early, and is told so)."""
    spec = spec_of(db, cid)
    plain, gold = db.db.execute("SELECT SUM(gold IS NULL), SUM(gold IS NOT NULL) FROM campaign_units WHERE "
                                "campaign = ?", (cid,)).fetchone()
    return (plain or 0) + int(spec.repeat * (plain or 0)) + (gold or 0)


def _assign(c, cid: str, rater: str, spec: Spec, rng: random.Random, now: float, out: set[str] = frozenset()
            ) -> tuple[int, str, int] | None:
    """The next item for ``rater``: now and then (at random positions, so they cannot be told apart) a gold check
    or a repeat of an item they answered, else one of the items with the fewest raters."""
    rows = c.execute("SELECT unit, model_a, model_b, gold FROM campaign_units WHERE campaign = ?", (cid,)).fetchall()
    models = {u: (a, b) if b else (a,) for u, a, b, _ in rows}  # a single answer has one "side"
    gold = {u for u, _, _, g in rows if g is not None}
    mine = c.execute("SELECT unit, repeat FROM campaign_answers WHERE campaign = ? AND rater = ? ORDER BY id",
                     (cid, rater)).fetchall()
    seen = {u for u, _ in c.execute("SELECT unit, repeat FROM campaign_shown WHERE campaign = ? AND rater = ?",
                                    (cid, rater))}
    plain_done = [u for u, rep in mine if not rep and u not in gold]
    repeated = {u for u, rep in mine if rep}
    side = lambda u: rng.choice(models[u])  # noqa: E731 - sides drawn per showing
    open_units, taken = _open_units(c, cid, rater, spec, now, out)
    golden = sorted(gold - seen)
    if golden and open_units and rng.random() < 1 / GOLD_EVERY:  # checks amid the work, never instead of it
        unit = rng.choice(golden)
        return unit, side(unit), 0
    again = [u for u in plain_done if u not in repeated]
    owed = len(repeated) < int(spec.repeat * len(plain_done))
    if again and owed and (not open_units or rng.random() < 0.5):
        unit = rng.choice(again)
        return unit, side(unit), 1
    if not open_units:
        return None
    fewest = min(taken[u] for u in open_units)
    unit = rng.choice([u for u in open_units if taken[u] == fewest])
    return unit, side(unit), 0


def answer(db: Ratings, cid: str, rater: str, unit: int, side: str | None = None, at: float | None = None,
           scores: dict | None = None) -> None:
    """The rater's answer to the unit they were shown: for a pair ``side`` (left, right or tie), for a single
    answer ``scores`` (1-5 on every dimension); timed from its showing to ``at``, now by default."""
    at_answer = time.time() if at is None else at
    if scores is not None:
        bad = [d for d in DIMENSIONS if not (isinstance(scores.get(d), int) and 1 <= scores[d] <= 5)]
        if bad:
            raise StudioError(f"score every dimension 1-5 ({', '.join(bad)} missing or out of range)")
    elif side not in SIDES:
        raise StudioError(f"an answer is one of {', '.join(SIDES)}, got {side!r}")
    with db.write() as c:
        state = c.execute("SELECT state FROM campaigns WHERE id = ?", (cid,)).fetchone()
        if state is None or state[0] != "open":
            raise StudioError("this campaign is closed: it takes no more answers")
        shown = c.execute("SELECT left_model, repeat, shown FROM campaign_shown s WHERE campaign = ? AND rater = ? "
                          "AND unit = ? AND NOT EXISTS (SELECT 1 FROM campaign_answers a WHERE a.campaign = "
                          "s.campaign AND a.rater = s.rater AND a.unit = s.unit AND a.repeat = s.repeat)",
                          (cid, rater, unit)).fetchone()
        if shown is None:
            raise StudioError(f"unit {unit} is not waiting for an answer from {rater}: rate what is shown")
        left, repeat, shown_at = shown
        a, kind = c.execute("SELECT model_a, kind FROM campaign_units WHERE campaign = ? AND unit = ?",
                            (cid, unit)).fetchone()
        if (kind == "single") != (scores is not None):
            raise StudioError(f"unit {unit} asks for {'scores 1-5' if kind == 'single' else 'a, b or tie'}")
        winner = None if scores else "tie" if side == "tie" else "a" if (side == "left") == (left == a) else "b"
        values = [(scores or {}).get(d) for d in DIMENSIONS]
        c.execute(f"INSERT INTO campaign_answers (campaign, rater, unit, left_model, winner, {', '.join(DIMENSIONS)}, "
                  "seconds, repeat, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (cid, rater, unit, left, winner, *values, at_answer - shown_at, repeat, at_answer))


def import_battles(db: Ratings, cid: str, path: str | Path) -> dict:
    """Arena battle rows as this campaign's answers (all or nothing): each row names a unit by question and
    pair; a rater's second answer to a unit counts as a repeat, a gold unit as a gold answer."""
    from studio.engine.data.readers import read_records
    from studio.engine.judge.ratings_io import ARENA, restore

    spec_of(db, cid)
    p = Path(path)
    recs = read_records(p)
    index = {(u["question_id"], u["model_a"], u["model_b"]): u for u in units(db, cid) if u["kind"] == "pair"}
    rows, count = [], Counter()
    for raw, where in zip(recs.rows, recs.where):
        row = {k: restore(v) for k, v in raw.items()}
        a, b, qid = str(row.get("model_a") or ""), str(row.get("model_b") or ""), str(row.get("question_id") or "")
        unit = index.get((qid, *sorted((a, b))))
        if unit is None:
            raise DataError(f"{p.name}: {where}: question {qid!r} with {a!r} vs {b!r} is not a unit of the campaign")
        said = ARENA.get(str(row.get("winner")))
        if said is None or said == "bothbad":
            said = "tie" if said == "bothbad" else None
        if said is None:
            raise DataError(f"{p.name}: {where}, field 'winner': expected one of {', '.join(ARENA)}, got "
                            f"{row.get('winner')!r}")
        winner = said if said == "tie" or a == unit["model_a"] else {"a": "b", "b": "a"}[said]
        judge = str(row.get("judge") or "imported").strip()[:100] or "imported"
        repeat = count[(judge, unit["unit"])]
        count[(judge, unit["unit"])] += 1
        seconds = _number(row.get("seconds"), p.name, where, "seconds")
        created = _number(row.get("tstamp"), p.name, where, "tstamp") or time.time()
        rows.append((cid, judge, unit["unit"], a, winner, seconds, min(repeat, 1), created))
    with db.write() as c:
        c.executemany("INSERT OR REPLACE INTO campaign_shown VALUES (?, ?, ?, ?, ?, ?)",
                      [(cid, r[1], r[2], r[3], r[6], r[7]) for r in rows])
        c.executemany("INSERT OR REPLACE INTO campaign_answers (campaign, rater, unit, left_model, winner, seconds, "
                      "repeat, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return {"answers": len(rows), "raters": len({r[1] for r in rows})}


def _number(value, name: str, where: str, key: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}: {where}, field '{key}': expected a number, got {value!r}") from None


def quality(db: Ratings, cid: str) -> list[dict]:
    """One row per rater: what they did, how well they did on what is known (gold, repeats), how they answer
    when nothing is known (which side they pick, whether their scores vary, whether they agree with the others),
    and whether they are excluded and why (``Spec.rules``)."""
    from scipy.stats import binomtest

    spec, all_units = spec_of(db, cid), {u["unit"]: u for u in units(db, cid)}
    gold = {u: x["gold"] for u, x in all_units.items() if x["gold"] is not None}
    rows = answers(db, cid)
    first = {(r["rater"], r["unit"]): r for r in rows if not r["repeat"] and r["unit"] not in gold}
    by_unit: dict[int, dict] = defaultdict(dict)
    for (rater, unit), r in first.items():
        by_unit[unit][rater] = r
    out, by_rater = [], defaultdict(list)
    for r in rows:
        by_rater[r["rater"]].append(r)
    for rater, mine in sorted(by_rater.items()):
        golds = [_right(r, gold[r["unit"]]) for r in mine if r["unit"] in gold]
        repeats = [_same(r, first[(rater, r["unit"])]) for r in mine if r["repeat"] and (rater, r["unit"]) in first]
        agree = [a for said in by_unit.values() if rater in said for a in _agrees(said[rater], said, rater)]
        seconds = [r["seconds"] for r in mine if r["seconds"] is not None]
        sides = [_picked_first(r, all_units[r["unit"]]) for r in mine if r["winner"] in ("a", "b")]
        side_p = binomtest(sum(sides), len(sides), 0.5).pvalue if sides else None
        scored = [tuple(r[d] for d in DIMENSIONS) for r in mine if r["winner"] is None and r[DIMENSIONS[0]]]
        flat = len(scored) >= spec.flat_min and len({v for t in scored for v in t}) == 1
        gold_low, gold_high = wilson(sum(golds), len(golds)) if golds else (None, None)
        row = {"rater": rater, "items": sum(1 for r in mine if not r["repeat"] and r["unit"] not in gold),
               "gold_answers": len(golds), "gold_accuracy": _share_of(golds), "gold_ci_low": gold_low,
               "gold_ci_high": gold_high, "repeats": len(repeats),
               "self_consistency": _share_of(repeats), "agreement": _share_of(agree), "agreed_on": len(agree),
               "median_seconds": statistics.median(seconds) if seconds else None,
               "first_side_share": _share_of(sides), "first_side_answers": len(sides), "first_side_p": side_p,
               "straight_lined": flat}
        why = []
        if golds and gold_high < spec.min_gold:
            why.append(f"gold accuracy {row['gold_accuracy']:.0%} of {len(golds)} [{gold_low:.0%}, {gold_high:.0%}] "
                       f"< {spec.min_gold:.0%}")
        if len(seconds) >= spec.speed_min and row["median_seconds"] < spec.min_seconds:
            why.append(f"median {row['median_seconds']:.1f} s per item < {spec.min_seconds:g} s")
        if len(sides) >= spec.side_min and side_p < spec.side_p:
            why.append(f"picked the first side {row['first_side_share']:.0%} of {len(sides)} times "
                       f"(binomial p {side_p:.2g} < {spec.side_p:g})")
        if flat:
            why.append(f"the same score on every dimension of all {len(scored)} answers")
        flag = ""
        if len(agree) >= 5 and row["agreement"] < 0.5:
            flag = f"agrees with the others' majority on {row['agreement']:.0%} of {len(agree)} items"
        out.append({**row, "excluded": bool(why), "why": "; ".join(why), "flag": flag})
    return out


def _picked_first(answer: dict, unit: dict) -> bool:
    """Whether a pair's answer went to the side shown first (left, A): the sides are drawn per showing."""
    picked = unit["model_a"] if answer["winner"] == "a" else unit["model_b"]
    return picked == answer["left_model"]


def excluded(db: Ratings, cid: str) -> set[str]:
    return {q["rater"] for q in quality(db, cid) if q["excluded"]}


def _right(answer: dict, gold: str) -> bool:
    """A gold check passed: the known winner of a pair, or a quality score in the expected range."""
    if answer["winner"] is not None:
        return answer["winner"] == gold
    expected = json.loads(gold)
    return expected["min"] <= answer["quality"] <= expected["max"]


def _same(again: dict, first: dict) -> bool:
    """A repeat agrees with the first answer: the same winner, or every score within one point."""
    if first["winner"] is not None:
        return again["winner"] == first["winner"]
    return all(abs(again[d] - first[d]) <= 1 for d in DIMENSIONS)


def _agrees(mine: dict, said: dict, rater: str) -> list[bool]:
    """Leave-one-out: a pair's answer against the others' clear majority; a score against the others' median,
    within one point (one judgement per dimension)."""
    others = [r for other, r in said.items() if other != rater]
    if not others:
        return []
    if mine["winner"] is not None:
        counts = Counter(r["winner"] for r in others)
        top, n = counts.most_common(1)[0]
        return [mine["winner"] == top] if list(counts.values()).count(n) == 1 else []
    return [abs(mine[d] - statistics.median(r[d] for r in others)) <= 1 for d in DIMENSIONS]


def _share_of(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def votes(db: Ratings, cid: str, all_raters: bool = False) -> list[dict]:
    """The campaign's first answers to its units (no gold, no repeats) as votes ``human`` reads, without the
    excluded raters unless ``all_raters``."""
    out_units = {u["unit"]: u for u in units(db, cid) if u["gold"] is None and u["kind"] == "pair"}
    excluded = set() if all_raters else {q["rater"] for q in quality(db, cid) if q["excluded"]}
    return [{"item_id": r["unit"], "system_a": out_units[r["unit"]]["model_a"],
             "system_b": out_units[r["unit"]]["model_b"], "winner": r["winner"], "rater": r["rater"]}
            for r in answers(db, cid) if not r["repeat"] and r["unit"] in out_units and r["rater"] not in excluded]


def rating_rows(db: Ratings) -> list[dict]:
    """Every campaign's answers as the rating pool's export rows (Arena battle columns, Likert scores), with the
    campaign named: what "Export all ratings" adds to the pool's."""
    from studio.engine.judge.ratings_io import ARENA

    back = {v: k for k, v in ARENA.items()}
    rows = []
    for c in campaigns(db):
        by_unit = {u["unit"]: u for u in units(db, c["id"])}
        for a in answers(db, c["id"]):
            u = by_unit[a["unit"]]
            common = {"question_id": u["question_id"], "judge": a["rater"], "prompt": u["prompt"],
                      "tstamp": a["created"], "campaign": c["id"]}
            if a["winner"] is not None:
                rows.append({**common, "kind": "pairwise", "model_a": u["model_a"], "model_b": u["model_b"],
                             "winner": back[a["winner"]], "output_a": u["output_a"], "output_b": u["output_b"]})
            else:
                rows.append({**common, "kind": "likert", "model": u["model_a"], **{d: a[d] for d in DIMENSIONS}})
    return rows


def all_votes(db: Ratings) -> list[dict]:
    """Every campaign's counted votes (the excluded raters left out), each item named by its campaign so that
    they never mix with another campaign's or the rating pool's: what a model card counts beside the pool."""
    return [{**v, "item_id": f"{c['id']}:{v['item_id']}", "campaign": c["id"]}
            for c in campaigns(db) for v in votes(db, c["id"])]


def scores(db: Ratings, cid: str, all_raters: bool = False) -> list[dict]:
    """The first 1-5 scores of each single answer, as the Likert rows ``human`` reads (item, system, rater and
    one value per dimension), without the excluded raters unless ``all_raters``."""
    singles = {u["unit"]: u for u in units(db, cid) if u["kind"] == "single" and u["gold"] is None}
    excluded = set() if all_raters else {q["rater"] for q in quality(db, cid) if q["excluded"]}
    return [{"item_id": r["unit"], "system": singles[r["unit"]]["model_a"], "rater": r["rater"],
             **{d: r[d] for d in DIMENSIONS}, "comment": ""}
            for r in answers(db, cid) if not r["repeat"] and r["unit"] in singles and r["rater"] not in excluded]


def likert(db: Ratings, cid: str, all_raters: bool = False) -> dict:
    """Mean score per system and dimension with bootstrap intervals, and Krippendorff's alpha (ordinal) per
    dimension across raters (``human.likert_summary``, ``human.agreement``)."""
    from studio.engine.judge import human

    rows = scores(db, cid, all_raters)
    agreement = human.agreement(rows) if rows else {}
    return {"means": human.likert_summary(rows) if rows else [],
            "alpha": {d: a["krippendorff_alpha"] for d, a in agreement.items()}}


_BOARDS: OrderedDict[tuple, list[dict]] = OrderedDict()  # the leaderboard of a set of votes, computed once


def leaderboard(db: Ratings, cid: str, all_raters: bool = False, seed: int = 0) -> list[dict]:
    """Bradley-Terry with bootstrap intervals (seconds for thousands of answers): computed again only when the
    votes changed, not on every view and every refresh of the page."""
    import hashlib

    from studio.engine.judge import human

    counted = votes(db, cid, all_raters)
    key = (cid, seed, hashlib.sha256(json.dumps(counted, sort_keys=True, default=str).encode()).hexdigest())
    if key not in _BOARDS:
        _BOARDS[key] = human.leaderboard(counted, seed=seed)
        while len(_BOARDS) > 64:
            _BOARDS.popitem(last=False)
    _BOARDS.move_to_end(key)
    return [dict(row) for row in _BOARDS[key]]


def preference_rows(db: Ratings, cid: str) -> list[dict]:
    """The people's verdict on each pair (their majority, without the excluded raters; ties and pairs without a
    majority left out) as DPO / reward-model records: prompt, chosen, rejected."""
    by_unit = {u["unit"]: u for u in units(db, cid)}
    said: dict[int, Counter] = defaultdict(Counter)
    for v in votes(db, cid):
        said[v["item_id"]][v["winner"]] += 1
    out = []
    for unit, counts in said.items():
        (top, n), *rest = counts.most_common()
        if top == "tie" or (rest and rest[0][1] == n):
            continue
        u = by_unit[unit]
        chosen, rejected = (u["output_a"], u["output_b"]) if top == "a" else (u["output_b"], u["output_a"])
        out.append({"prompt": u["prompt"], "chosen": chosen, "rejected": rejected})  # as the Rate tab's votes give
    return out


def human_vs_metric(db: Ratings, cid: str) -> list[dict]:
    """Which automatic metric agrees with the raters: Kendall's tau (scipy) between each pair's human outcome
    (+1 first system, -1 second, 0 tie, averaged over raters) and the metric's difference between the two
    answers, over the pairs that came from comparisons (their metric scores travel with them)."""
    from scipy.stats import kendalltau

    from studio.engine.judge.summary import LOWER_IS_BETTER

    measured = {u["unit"]: u for u in units(db, cid) if u["kind"] == "pair" and u["scores"]}
    outcome: dict[int, list[float]] = defaultdict(list)
    for v in votes(db, cid):
        if v["item_id"] in measured:
            outcome[v["item_id"]].append({"a": 1.0, "b": -1.0}.get(v["winner"], 0.0))
    metrics = sorted({m for u in measured.values() for sc in u["scores"].values() for m in sc})
    rows = []
    for m in metrics:
        h, d = [], []
        for unit, said in outcome.items():
            sc = measured[unit]["scores"]
            a, b = sc.get(measured[unit]["model_a"], {}), sc.get(measured[unit]["model_b"], {})
            if m in a and m in b:
                h.append(statistics.mean(said))
                d.append((b[m] - a[m]) if m in LOWER_IS_BETTER else (a[m] - b[m]))
        if len(h) >= 3 and len(set(h)) > 1 and len(set(d)) > 1:
            tau, p = kendalltau(h, d)
            rows.append({"metric": m, "kendall_tau": float(tau), "p_value": float(p), "n": len(h)})
    return sorted(rows, key=lambda r: -r["kendall_tau"])


def coverage(db: Ratings, cid: str) -> dict:
    """Raters per item (gold and repeats aside, the excluded raters left out: their items reopen for others)
    against the overlap asked for: the counts, each item's, each rater's progress, and how many more answers the
    campaign needs."""
    spec, out = spec_of(db, cid), excluded(db, cid)
    plain = [u for u in units(db, cid) if u["gold"] is None]
    rows = answers(db, cid)
    got = Counter(r["unit"] for r in rows if not r["repeat"] and r["rater"] not in out)
    counts = [got[u["unit"]] for u in plain]
    per_rater = Counter(r["rater"] for r in rows)
    total = planned(db, cid)
    return {"units": len(plain), "overlap": spec.overlap, "complete": sum(c >= spec.overlap for c in counts),
            "under": sum(c < spec.overlap for c in counts), "over": sum(c > spec.overlap for c in counts),
            "needed": sum(max(0, spec.overlap - c) for c in counts), "excluded": sorted(out),
            "raters": [{"rater": r, "answers": n, "of": total, "excluded": r in out}
                       for r, n in sorted(per_rater.items())],
            "per_item": [{"question_id": u["question_id"], "model_a": u["model_a"], "model_b": u["model_b"],
                          "raters": got[u["unit"]]} for u in plain]}


def alpha(db: Ratings, cid: str, all_raters: bool = False) -> float | None:
    """Krippendorff's alpha (nominal) of the answers across raters: 1 agreement, 0 chance."""
    import krippendorff
    import numpy as np

    vs = votes(db, cid, all_raters)
    raters, unit_ids = sorted({v["rater"] for v in vs}), sorted({v["item_id"] for v in vs})
    if len(raters) < 2 or not unit_ids:
        return None
    code = {"a": 0.0, "b": 1.0, "tie": 2.0}
    data = np.full((len(raters), len(unit_ids)), np.nan)
    for v in vs:
        data[raters.index(v["rater"]), unit_ids.index(v["item_id"])] = code[v["winner"]]
    if not ((~np.isnan(data)).sum(0) >= 2).any() or len(set(data[~np.isnan(data)].tolist())) < 2:
        return None  # no unit rated twice, or one answer only: agreement beyond chance is undefined
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


# -- a campaign as a Hugging Face dataset ------------------------------------------------------------------
ANSWER_FIELDS = ("rater", "question_id", "model_a", "model_b", "left_model", "winner", *DIMENSIONS, "seconds",
                 "repeat", "gold", "created")
UNIT_FIELDS = ("question_id", "prompt", "model_a", "model_b", "output_a", "output_b", "gold", "kind", "scores")


def export(db: Ratings, cid: str, out: str | Path) -> Path:
    """The campaign as a dataset folder that ``datasets.load_dataset`` reads: answers (Parquet and JSONL: rater,
    item, the sides shown, the answer, seconds, time), its units (Parquet and JSONL), its spec, and a dataset card
    with the rubric, the exclusions, the agreement and the columns."""
    import pandas as pd

    from studio.engine.runs import write_atomic, write_jsonl

    spec, out = spec_of(db, cid), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = next(c for c in campaigns(db) if c["id"] == cid)
    by_unit = {u["unit"]: u for u in units(db, cid)}
    rows = [{"rater": a["rater"], "question_id": by_unit[a["unit"]]["question_id"],
             "model_a": by_unit[a["unit"]]["model_a"], "model_b": by_unit[a["unit"]]["model_b"],
             "left_model": a["left_model"], "winner": a["winner"], **{d: a[d] for d in DIMENSIONS},
             "seconds": a["seconds"],
             "repeat": bool(a["repeat"]), "gold": by_unit[a["unit"]]["gold"] is not None, "created": a["created"]}
            for a in answers(db, cid)]
    write_jsonl(out / "answers.jsonl", rows)
    pd.DataFrame(rows, columns=list(ANSWER_FIELDS)).to_parquet(out / "answers.parquet", index=False)
    unit_rows = [{k: u[k] for k in UNIT_FIELDS} for u in by_unit.values()]
    write_jsonl(out / "units.jsonl", unit_rows)
    pd.DataFrame([{**u, "scores": json.dumps(u["scores"]) if u["scores"] else None} for u in unit_rows],
                 columns=list(UNIT_FIELDS)).to_parquet(out / "units.parquet", index=False)  # one format for datasets
    write_atomic(out / "campaign.json", json.dumps({**meta, "spec": asdict(spec)}, indent=1))
    write_atomic(out / "README.md", card(db, cid))
    return out


ZIP_MAX_MB = 256  # a campaign zip brought back to the page: at most this, unpacked


def export_zip(db: Ratings, cid: str, out: str | Path) -> Path:
    """``export``'s folder as one zip (what the page hands out)."""
    import tempfile
    import zipfile

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export(db, cid, Path(tmp) / cid)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    z.write(f, f"{cid}/{f.relative_to(folder)}")
    return out


def import_zip(db: Ratings, path: str | Path, owner: str | None = None) -> str:
    """A zip ``export_zip`` made, back as a campaign filed under ``owner``: every name and size checked before a
    byte is unpacked (no absolute path, no ``..``, at most ``ZIP_MAX_MB`` in all)."""
    import tempfile
    import zipfile

    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
            bad = [i.filename for i in infos if i.filename.startswith("/") or ".." in Path(i.filename).parts]
            if bad:
                raise DataError(f"{p.name}: {bad[0]!r} is not a name a campaign's file has")
            if sum(i.file_size for i in infos) > ZIP_MAX_MB * 2**20:
                raise DataError(f"{p.name}: more than {ZIP_MAX_MB} MB once unpacked")
            tops = {Path(i.filename).parts[0] for i in infos if i.filename.strip("/")}
            with tempfile.TemporaryDirectory() as tmp:
                z.extractall(tmp)
                nested = len(tops) == 1 and not (Path(tmp) / "campaign.json").is_file()
                folder = Path(tmp) / next(iter(tops)) if nested else Path(tmp)
                return import_export(db, folder, owner, as_owner=True)
    except zipfile.BadZipFile:
        raise DataError(f"{p.name}: not a zip file (the page's Export makes one)") from None


def md(text) -> str:
    """A name in the card (the campaign's, a rater's, a model's): shown as itself, linking and loading nothing."""
    return safe_md(text, literal=True)


def card(db: Ratings, cid: str) -> str:
    """The dataset card: every name and the owner's rubric go in through ``safe_md``."""
    spec, quality_rows = spec_of(db, cid), quality(db, cid)
    board, a = leaderboard(db, cid), alpha(db, cid)
    cover = coverage(db, cid)
    excluded = [q for q in quality_rows if q["excluded"]]
    lines = ["---", "configs:", "- config_name: answers", "  data_files: answers.parquet", "  default: true",
             "- config_name: units", "  data_files: units.parquet", "tags:", "- human-evaluation", f"- {spec.mode}",
             "- finetune-studio", "---", "", f"# Rating campaign: {md(spec.name)}",
             "", f"Ratings ({spec.mode}) collected with the fine-tuning studio: {cover['units']} items, "
             f"{spec.overlap} raters each ({cover['complete']} complete), {len(quality_rows)} raters.", "",
             "## Rubric", "", safe_md(guidelines(spec)), "", f"Question: {md(spec.rubric.question)}", ""]
    if spec.mode != "pairwise":
        lines += [f"- {d}: " + "; ".join(md(x) for x in labels) for d, labels in spec.rubric.anchors.items()] + [""]
    lines += ["## Exclusions", "", spec.rules() + ".", ""]
    lines += [f"- {md(q['rater'])}: {q['why']}" for q in excluded] or ["Nobody was excluded."]
    lines += ["", "## Results (without the excluded raters)", "",
              f"Krippendorff's alpha (nominal) across raters: {'-' if a is None else f'{a:.3f}'}.", "",
              "| model | rating | 95% interval | n |", "|---|---|---|---|"]
    lines += [f"| {md(r['model'])} | {r['rating']:.1f} | [{r['ci_low']:.1f}, {r['ci_high']:.1f}] | {r['n']} |"
              for r in board]
    agreeing = human_vs_metric(db, cid)
    if agreeing:
        lines += ["", "Which metric agrees with the raters (Kendall's tau, per pair):", "",
                  "| metric | tau | p | n |", "|---|---|---|---|"]
        lines += [f"| {r['metric']} | {r['kendall_tau']:+.3f} | {r['p_value']:.3f} | {r['n']} |" for r in agreeing]
    scored = likert(db, cid)
    if scored["means"]:
        alphas = ", ".join(f"{d} {'-' if v is None else f'{v:.3f}'}" for d, v in scored["alpha"].items())
        lines += ["", f"1-5 scores (Krippendorff's alpha, ordinal, per dimension: {alphas}):", "",
                  "| model | dimension | mean | 95% interval | n |", "|---|---|---|---|---|"]
        lines += [f"| {md(m['system'])} | {m['dimension']} | {m['mean']:.2f} | "
                  + ("-" if m["ci_low"] is None else f"[{m['ci_low']:.2f}, {m['ci_high']:.2f}]") + f" | {m['n']} |"
                  for m in scored["means"]]
    lines += ["", "## Files", "", "`datasets.load_dataset(\"path/to/this/folder\")` reads `answers` (the default); "
              "`load_dataset(\"path/to/this/folder\", \"units\")` reads `units`. `datasets` keeps what it read of a "
              "local folder under the folder's name: after a newer export to the same place, add "
              "`download_mode=\"force_redownload\"`.", "",
              "`answers` (answers.parquet, also answers.jsonl) has one row per answer: the rater, the item "
              "(question_id, model_a, model_b; model_b is empty for a single answer), the model shown first, the "
              "winner of a pair (a, b or tie, of model_a and model_b) or the 1-5 scores of a single answer, seconds "
              "spent, whether it was a planned repeat or a gold check, and when. Columns: "
              + ", ".join(f"`{f}`" for f in ANSWER_FIELDS) + ".", "",
              "`units` (units.parquet, also units.jsonl) has one row per item: the prompt, the two answers shown (or "
              "one), the gold answer if the item is a check, its kind, and the metric scores the comparison gave it "
              "(a JSON object in the Parquet file). Columns: "
              + ", ".join(f"`{f}`" for f in UNIT_FIELDS) + ".", ""]
    return "\n".join(lines)


def import_export(db: Ratings, folder: str | Path, owner: str | None = None, as_owner: bool = False) -> str:
    """A folder ``export`` wrote, back into the database under its own id (all or nothing); ``as_owner``: filed
    under ``owner`` (a visitor who imports a campaign owns the copy), else under the owner it names."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "campaign.json").read_text())
        unit_rows = [json.loads(x) for x in (folder / "units.jsonl").read_text().splitlines() if x.strip()]
        rows = [json.loads(x) for x in (folder / "answers.jsonl").read_text().splitlines() if x.strip()]
    except (OSError, ValueError) as e:
        raise DataError(f"{folder}: not a campaign export ({e})") from None
    _ensure(db)
    cid = meta["id"]
    index = {(u["question_id"], u["model_a"], u["model_b"]): n for n, u in enumerate(unit_rows)}
    with db.write() as c:
        if c.execute("SELECT 1 FROM campaigns WHERE id = ?", (cid,)).fetchone():
            raise StudioError(f"campaign {cid} is already here")
        c.execute("INSERT INTO campaigns (id, name, spec, state, created, owner) VALUES (?, ?, ?, ?, ?, ?)",
                  (cid, meta["name"], json.dumps(meta["spec"]), meta["state"], meta["created"],
                   owner if as_owner else meta.get("owner")))
        c.executemany("INSERT INTO campaign_units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [(cid, n, u["question_id"], u["prompt"], u["model_a"], u["model_b"], u["output_a"],
                        u["output_b"], u["gold"], u.get("kind", "pair"),
                        json.dumps(u["scores"]) if u.get("scores") else None) for n, u in enumerate(unit_rows)])
        for r in rows:
            unit = index[(r["question_id"], r["model_a"], r["model_b"])]
            shown = r["created"] - (r["seconds"] or 0.0)
            c.execute("INSERT INTO campaign_shown VALUES (?, ?, ?, ?, ?, ?)",
                      (cid, r["rater"], unit, r["left_model"], int(r["repeat"]), shown))
            c.execute(f"INSERT INTO campaign_answers (campaign, rater, unit, left_model, winner, "
                      f"{', '.join(DIMENSIONS)}, seconds, repeat, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (cid, r["rater"], unit, r["left_model"], r["winner"], *[r.get(d) for d in DIMENSIONS],
                       r["seconds"], int(r["repeat"]), r["created"]))
    return cid


# -- a judge beside the people ---------------------------------------------------------------------------------
JUDGE_PROMPT = ("Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
                "assistants to the user question displayed below. {question} Avoid any position biases and do not "
                "let the order or the length of the responses influence you. Output your final verdict strictly "
                "in this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and "
                "\"[[C]]\" for a tie.\n\n[User Question]\n{prompt}\n\n[The Start of Assistant A's Answer]\n{a}\n"
                "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{b}\n"
                "[The End of Assistant B's Answer]")


def judge_units(db: Ratings, cid: str, judge) -> list[dict]:
    """``judge(prompt, first, second) -> "first" | "second" | "tie"`` on every pair of the campaign, in both
    orders (MT-Bench's rule against position bias): per unit the winner (a, b or tie) each order gave."""
    out = []
    for u in units(db, cid):
        if u["gold"] is not None or u["kind"] != "pair":
            continue
        forward = judge(u["prompt"], u["output_a"], u["output_b"])
        backward = judge(u["prompt"], u["output_b"], u["output_a"])
        out.append({"unit": u["unit"], "forward": {"first": "a", "second": "b"}.get(forward, "tie"),
                    "backward": {"first": "b", "second": "a"}.get(backward, "tie")})
    return out


def judge_agreement(db: Ratings, cid: str, judged: list[dict]) -> dict:
    """How far a judge agrees with the people (their majority per pair, without the excluded raters), as
    MT-Bench reports it: each order of each pair is one judgement, so a judge that always picks the first answer
    agrees on half the decided pairs whatever it reads. With ties: three outcomes; without: only pairs both the
    judge and the people decided. Cohen's kappa on the three outcomes; consistency: pairs whose two orders
    agree."""
    from sklearn.metrics import cohen_kappa_score

    people: dict[int, Counter] = defaultdict(Counter)
    for v in votes(db, cid):
        people[v["item_id"]][v["winner"]] += 1
    human = {}
    for unit, said in people.items():
        (top, n), *rest = said.most_common()
        human[unit] = top if not rest or rest[0][1] < n else "tie"  # no majority: a tie
    pairs = [(human[j["unit"]], j[order]) for j in judged if j["unit"] in human for order in ("forward", "backward")]
    if not pairs:
        return {"n": 0}
    decided = [(h, m) for h, m in pairs if h != "tie" and m != "tie"]
    labels = ["a", "b", "tie"]
    kappa = cohen_kappa_score([h for h, _ in pairs], [m for _, m in pairs], labels=labels)
    return {"n": len(pairs) // 2, "agreement_with_ties": sum(h == m for h, m in pairs) / len(pairs),
            "agreement_without_ties": sum(h == m for h, m in decided) / len(decided) if decided else None,
            "decided": len(decided), "kappa": None if kappa != kappa else float(kappa),
            "consistency": sum(j["forward"] == j["backward"] for j in judged) / len(judged) if judged else None}


def reward_judge(reference: str, margin: float = 0.0):
    """A reward-model run as a judge: the answer it scores higher wins (a tie within ``margin``)."""
    from studio.engine.judge.reward import scores
    from studio.engine.models import load_reward_model

    model, tokenizer = load_reward_model(reference)

    def judge(prompt: str, first: str, second: str) -> str:
        conv = [{"role": "user", "content": prompt}]
        s1, s2 = scores(model, tokenizer, [conv + [{"role": "assistant", "content": t}] for t in (first, second)])
        return "tie" if abs(s1 - s2) <= margin else "first" if s1 > s2 else "second"

    return judge


def endpoint_judge(base_url: str, model: str, api_key: str = "none", question: str = Rubric().question):
    """Any OpenAI-compatible chat endpoint as a judge (`studio serve` works for a local test): MT-Bench's
    pairwise prompt, temperature 0, the verdict read from [[A]], [[B]] or [[C]] (anything else is a tie)."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key)

    def judge(prompt: str, first: str, second: str) -> str:
        text = JUDGE_PROMPT.format(question=question, prompt=prompt, a=first, b=second)
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                               temperature=0, max_tokens=512)
        said = reply.choices[0].message.content or ""
        return "first" if "[[A]]" in said else "second" if "[[B]]" in said else "tie"

    return judge
