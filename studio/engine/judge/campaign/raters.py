"""Each rater's quality: gold accuracy, self-consistency, agreement, speed, position bias, straight-lining; who
is excluded and why (the rules are the campaign's ``Spec``)."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict

from studio.engine.judge.campaign.store import answers, spec_of, units
from studio.engine.judge.human import wilson
from studio.engine.judge.ratings import DIMENSIONS, Ratings


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
