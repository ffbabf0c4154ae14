"""What the kept raters said: votes and scores as ``human`` reads them, the leaderboard (cached per set of
votes), agreement, coverage, the verdicts as training pairs, and which metric agrees with the people."""

from __future__ import annotations

import json
import statistics
from collections import Counter, OrderedDict, defaultdict

from studio.engine.judge.campaign.assign import planned
from studio.engine.judge.campaign.raters import excluded, quality
from studio.engine.judge.campaign.store import answers, campaigns, spec_of, units
from studio.engine.judge.ratings import DIMENSIONS, Ratings


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
