"""What the ratings say: a leaderboard, Likert means, rater agreement, and which metric agrees.

Contract (all take the rows ``Ratings`` returns):
- ``leaderboard(votes)``: Bradley-Terry by maximum likelihood as Chatbot Arena computes it (a tie,
  "both bad" included, counts half a win to each side; Elo scale: 400 per factor of 10, centred on
  1000), 100 bootstrap rounds over votes for 95 % intervals, win rates with intervals, and ranks
  that respect the intervals (1 + the number of models surely better);
- ``likert_summary(rows)``: mean per dimension and system with bootstrap intervals;
- ``agreement(rows)``: Cohen's kappa (unweighted and quadratic) per rater pair (scikit-learn) and
  Krippendorff's alpha, ordinal, across raters (the ``krippendorff`` package), per dimension;
- ``human_vs_metric(votes, items)``: Kendall's tau (scipy) between the human outcome of each item
  (tuned vs base, averaged over raters) and each metric's tuned-minus-base score.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np

from .ratings import DIMENSIONS

SCALE, BASE, INIT = 400.0, 10.0, 1000.0
ROUNDS = 100  # Chatbot Arena's bootstrap rounds


def _outcomes(votes: list[dict]) -> list[tuple[str, str, float]]:
    """(a, b, score of a): 1 a wins, 0 b wins, 0.5 tie or both bad."""
    value = {"a": 1.0, "b": 0.0, "tie": 0.5, "bothbad": 0.5}
    return [(v["system_a"], v["system_b"], value[v["winner"]]) for v in votes]


def bradley_terry(battles: list[tuple[str, str, float]], iters: int = 1000, tol: float = 1e-10) -> dict[str, float]:
    """Maximum-likelihood strengths by Hunter's MM iteration, as Elo-scale ratings.

    Each model also plays one virtual tie against a model of average strength, so a model that never
    won gets a finite rating (the same role as a weak prior in a logistic regression)."""
    models = sorted({m for a, b, _ in battles for m in (a, b)})
    if not models:
        return {}
    idx = {m: i for i, m in enumerate(models)}
    n = len(models)
    wins, games = np.full(n, 0.5), np.zeros((n, n))
    for a, b, s in battles:
        i, j = idx[a], idx[b]
        wins[i] += s
        wins[j] += 1 - s
        games[i, j] += 1
        games[j, i] += 1
    p = np.ones(n)
    for _ in range(iters):
        denom = (games / (p[:, None] + p[None, :])).sum(1) + 1.0 / (p + 1.0)  # + the virtual tie
        new = wins / denom
        new /= np.exp(np.log(new).mean())
        if np.abs(new - p).max() < tol:
            p = new
            break
        p = new
    return {m: INIT + SCALE * math.log(p[idx[m]], BASE) for m in models}


def leaderboard(votes: list[dict], rounds: int = ROUNDS, seed: int = 0) -> list[dict]:
    battles = _outcomes(votes)
    if not battles:
        return []
    point = bradley_terry(battles)
    rng = np.random.default_rng(seed)
    boot: dict[str, list[float]] = defaultdict(list)
    win_boot: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        sample = [battles[i] for i in rng.integers(0, len(battles), len(battles))]
        for m, r in bradley_terry(sample).items():
            boot[m].append(r)
        for m, w in _win_rates(sample).items():
            win_boot[m].append(w[0])
    rates = _win_rates(battles)
    rows = []
    for m, r in point.items():
        lo, hi = np.percentile(boot[m], [2.5, 97.5]) if boot[m] else (r, r)
        wlo, whi = np.percentile(win_boot[m], [2.5, 97.5]) if win_boot[m] else (rates[m][0],) * 2
        rows.append({"model": m, "rating": r, "ci_low": float(lo), "ci_high": float(hi), "win_rate": rates[m][0],
                     "win_rate_ci_low": float(wlo), "win_rate_ci_high": float(whi), "n": rates[m][1]})
    for row in rows:
        row["rank"] = 1 + sum(1 for other in rows if other["ci_low"] > row["ci_high"])
    return sorted(rows, key=lambda r: -r["rating"])


def _win_rates(battles) -> dict[str, tuple[float, int]]:
    score, count = defaultdict(float), defaultdict(int)
    for a, b, s in battles:
        score[a] += s
        score[b] += 1 - s
        count[a] += 1
        count[b] += 1
    return {m: (score[m] / count[m], count[m]) for m in count}


def likert_summary(rows: list[dict], seed: int = 0, resamples: int = 1000) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for system in sorted({r["system"] for r in rows}):
        for dim in DIMENSIONS:
            values = np.array([r[dim] for r in rows if r["system"] == system and r[dim] is not None], float)
            if not len(values):
                continue
            means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
            out.append({"system": system, "dimension": dim, "mean": float(values.mean()),
                        "ci_low": float(np.percentile(means, 2.5)), "ci_high": float(np.percentile(means, 97.5)),
                        "n": int(len(values))})
    return out


def agreement(rows: list[dict]) -> dict:
    """Per dimension: kappa per rater pair on the outputs both rated, and alpha across all raters."""
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    out = {}
    for dim in DIMENSIONS:
        by_rater: dict[str, dict] = defaultdict(dict)
        for r in rows:
            if r[dim] is not None:
                by_rater[r["rater"]][(r["item_id"], r["system"])] = r[dim]
        pairs = []
        for a, b in itertools.combinations(sorted(by_rater), 2):
            common = sorted(set(by_rater[a]) & set(by_rater[b]))
            if len(common) < 2:
                continue
            x, y = [by_rater[a][u] for u in common], [by_rater[b][u] for u in common]
            pairs.append({"raters": [a, b], "n": len(common),
                          "kappa": _kappa(cohen_kappa_score, x, y, None),
                          "kappa_quadratic": _kappa(cohen_kappa_score, x, y, "quadratic")})
        units = sorted({u for ratings in by_rater.values() for u in ratings})
        alpha = None
        if len(by_rater) >= 2 and units:
            data = np.array([[by_rater[r].get(u, np.nan) for u in units] for r in sorted(by_rater)], float)
            if np.sum(~np.isnan(data).all(0) & (np.sum(~np.isnan(data), 0) >= 2)) >= 1:
                alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal",
                                                 value_domain=[1, 2, 3, 4, 5]))
        out[dim] = {"pairs": pairs, "krippendorff_alpha": alpha, "raters": len(by_rater)}
    return out


def _kappa(fn, x, y, weights) -> float | None:
    value = fn(x, y, labels=[1, 2, 3, 4, 5], weights=weights)
    return None if math.isnan(value) else float(value)


def human_vs_metric(votes: list[dict], items: list[dict], tuned: str = "tuned", base: str = "base") -> list[dict]:
    """Kendall's tau between the human outcome per item and each metric's tuned - base."""
    from scipy.stats import kendalltau

    outcome: dict[int, list[float]] = defaultdict(list)
    for v in votes:
        if {v["system_a"], v["system_b"]} != {tuned, base}:
            continue
        s = {"a": 1.0, "b": -1.0}.get(v["winner"], 0.0)
        outcome[v["item_id"]].append(s if v["system_a"] == tuned else -s)
    by_id = {it["id"]: it for it in items}
    metrics = sorted({k[len("tuned_"):] for it in items for k in it.get("scores", {}) if k.startswith("tuned_")})
    rows = []
    for m in metrics:
        h, d = [], []
        for item_id, outs in outcome.items():
            sc = by_id.get(item_id, {}).get("scores", {})
            if f"tuned_{m}" in sc and f"base_{m}" in sc:
                h.append(float(np.mean(outs)))
                diff = sc[f"tuned_{m}"] - sc[f"base_{m}"]
                d.append(-diff if m == "perplexity" else diff)
        if len(h) >= 3 and len(set(h)) > 1 and len(set(d)) > 1:
            tau, p = kendalltau(h, d)
            rows.append({"metric": m, "kendall_tau": float(tau), "p_value": float(p), "n": len(h)})
    return sorted(rows, key=lambda r: -r["kendall_tau"])
