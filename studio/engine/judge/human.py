"""What the ratings say: a leaderboard, Likert means, rater agreement, and which metric agrees.

Contract (all take the rows ``Ratings`` returns):
- ``leaderboard(votes)``: Bradley-Terry by maximum likelihood as Chatbot Arena computes it (a tie,
  "both bad" included, counts half a win to each side; Elo scale: 400 per factor of 10, centred on
  1000), 100 bootstrap rounds over votes for 95 % intervals, win rates with intervals, and ranks
  that respect the intervals (1 + the number of models surely better). Small samples get honest intervals:
  a rating's interval is the wider of the bootstrap's and the fit's own (Laplace) interval under its weak
  prior, so five votes one way never give a zero-width interval; a win rate's is Wilson's score interval;
  ``small`` says when a model has fewer than ``SMALL`` votes or all of them one way;
- ``likert_summary(rows)``: mean per dimension and system with bootstrap intervals (none from fewer than
  two ratings; ``small`` below ``SMALL`` ratings or when all ratings agree);
- ``agreement(rows)``: Cohen's kappa (unweighted and quadratic) per rater pair (scikit-learn) and
  Krippendorff's alpha, ordinal, across raters (the ``krippendorff`` package), per dimension;
- ``human_vs_metric(votes, items)``: Kendall's tau (scipy) between the human outcome of each item
  (tuned vs base, averaged over raters) and each metric's tuned-minus-base score.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from studio.engine.judge.ratings import DIMENSIONS
from studio.engine.judge.summary import LOWER_IS_BETTER

SCALE, BASE, INIT = 400.0, 10.0, 1000.0
ROUNDS = 100  # Chatbot Arena's bootstrap rounds
SMALL = 10  # fewer votes or ratings than this: the numbers are shown, and said to rest on a small sample
Z95 = 1.959964


@dataclass
class Battles:
    """Votes aggregated: each distinct (a, b, score of a) once, with how many votes said it."""
    models: list[str]
    a: np.ndarray  # model index of side a
    b: np.ndarray
    score: np.ndarray  # 1 a won, 0 b won, 0.5 tie or both bad
    count: np.ndarray

    @classmethod
    def of(cls, votes: list[dict]) -> Battles:
        value = {"a": 1.0, "b": 0.0, "tie": 0.5, "bothbad": 0.5}
        rows = Counter((v["system_a"], v["system_b"], value[v["winner"]]) for v in votes)
        models = sorted({m for a, b, _ in rows for m in (a, b)})
        idx = {m: i for i, m in enumerate(models)}
        keys = list(rows)
        return cls(models, np.array([idx[a] for a, _, _ in keys], int), np.array([idx[b] for _, b, _ in keys], int),
                   np.array([s for _, _, s in keys], float), np.array([rows[k] for k in keys], float))


def bradley_terry(battles: Battles, count: np.ndarray | None = None, spread: bool = False):
    """Elo-scale ratings by maximum likelihood: a logistic regression on (model a - model b), as Chatbot
    Arena fits it, a tie counting half a win to each side (scikit-learn).

    Each model also plays one virtual tie against a model of average strength (rating 1000), so a model
    that never won gets a finite rating: the prior of the regression, and what pins its scale."""
    from sklearn.linear_model import LogisticRegression

    n, k = len(battles.models), len(battles.a)
    count = battles.count if count is None else count
    x = np.zeros((2 * k + 2 * n, n))
    x[np.arange(k), battles.a] = 1.0
    x[np.arange(k), battles.b] = -1.0
    x[k:2 * k] = x[:k]
    x[2 * k:2 * k + n] = x[2 * k + n:] = np.eye(n)
    y = np.r_[np.ones(k), np.zeros(k), np.ones(n), np.zeros(n)]
    w = np.r_[count * battles.score, count * (1 - battles.score), np.full(2 * n, 0.5)]
    fit = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8, max_iter=1000)
    fit.fit(x * math.log(BASE), y, sample_weight=w)
    coef = fit.coef_[0]
    ratings = INIT + SCALE * (coef - coef.mean())  # centred on 1000, as the leaderboard always was
    if not spread:
        return ratings
    # the fit's own standard errors (Laplace: the inverse of the weighted Hessian, virtual games included)
    z = x * math.log(BASE)
    p = 1 / (1 + np.exp(-z @ coef))
    hessian = (z * (w * p * (1 - p))[:, None]).T @ z
    centre = np.eye(n) - 1.0 / n
    cov = centre @ np.linalg.pinv(hessian) @ centre.T
    return ratings, SCALE * np.sqrt(np.clip(np.diag(cov), 0, None))


def wilson(wins: float, games: float) -> tuple[float, float]:
    """Wilson's score interval (95 %) for a win rate: honest at 5 of 5 ([0.57, 1]), where the bootstrap says
    [1, 1]."""
    if games <= 0:
        return 0.0, 1.0
    phat, z2 = wins / games, Z95 ** 2
    centre = (phat + z2 / (2 * games)) / (1 + z2 / games)
    half = Z95 * math.sqrt(phat * (1 - phat) / games + z2 / (4 * games ** 2)) / (1 + z2 / games)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _win_rates(battles: Battles, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(win rate, games) per model, a tie half a win."""
    n = len(battles.models)
    won = np.bincount(battles.a, count * battles.score, n) + np.bincount(battles.b, count * (1 - battles.score), n)
    games = np.bincount(battles.a, count, n) + np.bincount(battles.b, count, n)
    return won / np.maximum(games, 1), games


def leaderboard(votes: list[dict], rounds: int = ROUNDS, seed: int = 0) -> list[dict]:
    """Ratings with 95 % intervals from ``rounds`` bootstrap resamples of the votes (multinomial over
    the aggregated rows, so 50,000 votes cost no more than 50), win rates with intervals, and ranks."""
    if not votes:
        return []
    battles = Battles.of(votes)
    point, se = bradley_terry(battles, spread=True)
    rates, games = _win_rates(battles, battles.count)
    total = int(battles.count.sum())
    draws = np.random.default_rng(seed).multinomial(total, battles.count / total, size=rounds).astype(float)
    boot = np.array([bradley_terry(battles, c) for c in draws])
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    lo, hi = np.minimum(lo, point - Z95 * se), np.maximum(hi, point + Z95 * se)
    rows = []
    for i, m in enumerate(battles.models):
        wlo, whi = wilson(rates[i] * games[i], games[i])
        one_way = rates[i] in (0.0, 1.0)
        rows.append({"model": m, "rating": float(point[i]), "ci_low": float(lo[i]), "ci_high": float(hi[i]),
                     "win_rate": float(rates[i]), "win_rate_ci_low": wlo, "win_rate_ci_high": whi,
                     "n": int(games[i]), "small": bool(games[i] < SMALL or one_way)})
    for row in rows:
        row["rank"] = 1 + sum(1 for other in rows if other["ci_low"] > row["ci_high"])
    return sorted(rows, key=lambda r: -r["rating"])


def likert_summary(rows: list[dict], seed: int = 0, resamples: int = 1000) -> list[dict]:
    """Mean per system and dimension with a percentile bootstrap 95 % interval (scipy)."""
    from scipy.stats import bootstrap

    out = []
    for system in sorted({r["system"] for r in rows}):
        for dim in DIMENSIONS:
            values = np.array([r[dim] for r in rows if r["system"] == system and r[dim] is not None], float)
            if not len(values):
                continue
            lo = hi = None  # one rating, or ratings that all agree, give no interval worth the name
            if len(values) > 1 and values.min() != values.max():
                ci = bootstrap((values,), np.mean, n_resamples=resamples, method="percentile",
                               rng=np.random.default_rng(seed)).confidence_interval
                lo, hi = float(ci.low), float(ci.high)
            out.append({"system": system, "dimension": dim, "mean": float(values.mean()), "ci_low": lo,
                        "ci_high": hi, "n": int(len(values)),
                        "small": bool(len(values) < SMALL or values.min() == values.max())})
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
    """Kendall's tau between the human outcome per item and each metric's tuned - base; an item's
    ``scores`` are ``{system: {metric: value}}``."""
    from scipy.stats import kendalltau

    outcome: dict[int, list[float]] = defaultdict(list)
    for v in votes:
        if {v["system_a"], v["system_b"]} != {tuned, base}:
            continue
        s = {"a": 1.0, "b": -1.0}.get(v["winner"], 0.0)
        outcome[v["item_id"]].append(s if v["system_a"] == tuned else -s)
    by_id = {it["id"]: it.get("scores", {}) for it in items}
    metrics = sorted({m for sc in by_id.values() for m in sc.get(tuned, {}) if m in sc.get(base, {})})
    rows = []
    for m in metrics:
        h, d = [], []
        for item_id, outs in outcome.items():
            sc = by_id.get(item_id, {})
            if m in sc.get(tuned, {}) and m in sc.get(base, {}):
                h.append(float(np.mean(outs)))
                diff = sc[tuned][m] - sc[base][m]
                d.append(-diff if m in LOWER_IS_BETTER else diff)
        if len(h) >= 3 and len(set(h)) > 1 and len(set(d)) > 1:
            tau, p = kendalltau(h, d)
            rows.append({"metric": m, "kendall_tau": float(tau), "p_value": float(p), "n": len(h)})
    return sorted(rows, key=lambda r: -r["kendall_tau"])
