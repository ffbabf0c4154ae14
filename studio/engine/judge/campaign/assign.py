"""Who rates what next: gold checks and repeats at random places amid open work, else the unit with the fewest
kept raters; an excluded rater's places reopen. Answers are timed from their showing."""

from __future__ import annotations

import random
import time
from collections import Counter

from studio.engine.errors import StudioError
from studio.engine.judge.campaign.raters import excluded
from studio.engine.judge.campaign.store import HOLD_S, SIDES, Shown, Spec, spec_of
from studio.engine.judge.ratings import DIMENSIONS, Ratings

GOLD_EVERY = 5  # about one item in five is a gold check while gold units remain


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
    """How many answers a rater is asked for at most: their share of the items (``Spec.per_rater``, else every
    item once), the repeats the campaign plans on it and the gold checks they may get. Fixed when the campaign is
    made, so a rater's "N of M" never moves under them (a rater the others leave less to finishes early, and is
    told so)."""
    spec = spec_of(db, cid)
    plain, gold = db.db.execute("SELECT SUM(gold IS NULL), SUM(gold IS NOT NULL) FROM campaign_units WHERE "
                                "campaign = ?", (cid,)).fetchone()
    share = _share(spec, plain or 0)
    return share + int(spec.repeat * share) + _gold_share(spec, share, gold or 0)


def _share(spec: Spec, plain: int) -> int:
    return min(spec.per_rater, plain) if spec.per_rater else plain


def _gold_share(spec: Spec, share: int, gold: int) -> int:
    """Gold checks a rater may get: all of them, or with a share of the items about one check in ``GOLD_EVERY``
    answers (at least one)."""
    return min(gold, max(1, -(-share // (GOLD_EVERY - 1)))) if spec.per_rater else gold


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
    share = _share(spec, len(models) - len(gold))
    if spec.per_rater and len({u for u in seen if u not in gold}) >= share:
        open_units = []  # their share is given: repeats still owed come, nothing new
    golden = sorted(gold - seen) if len(gold & seen) < _gold_share(spec, share, len(gold)) else []
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
            draft = state is not None and state[0] == "draft"
            raise StudioError("this campaign is not open yet: its owner is preparing it" if draft else
                              "this campaign is closed: it takes no more answers")
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
