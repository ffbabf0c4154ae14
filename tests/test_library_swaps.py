"""Where a library replaced hand-written code, the new result is checked against the old one: the
Bradley-Terry fit (scikit-learn's logistic regression vs Hunter's MM), the bootstrap intervals
(scipy.stats.bootstrap vs a numpy percentile loop), BLEU (sacrebleu's public API vs its corpus
score), the estimate's trainable count (PEFT on the meta device vs PEFT on the real model) and the
model card (huggingface_hub's ModelCard, parsed back)."""

import math
import random

import numpy as np
import pytest
from conftest import SAMPLES, tiny_config

from studio.config import StudioConfig
from studio.engine.judge import human
from studio.engine.judge import metrics as M


def old_bradley_terry(votes, iters=1000, tol=1e-10):
    """The studio's earlier hand-written fit (Hunter's MM with one virtual tie per model), kept as the oracle."""
    value = {"a": 1.0, "b": 0.0, "tie": 0.5, "bothbad": 0.5}
    battles = [(v["system_a"], v["system_b"], value[v["winner"]]) for v in votes]
    models = sorted({m for a, b, _ in battles for m in (a, b)})
    idx = {m: i for i, m in enumerate(models)}
    n = len(models)
    wins, games = np.full(n, 0.5), np.zeros((n, n))
    for a, b, s in battles:
        wins[idx[a]] += s
        wins[idx[b]] += 1 - s
        games[idx[a], idx[b]] += 1
        games[idx[b], idx[a]] += 1
    p = np.ones(n)
    for _ in range(iters):
        new = wins / ((games / (p[:, None] + p[None, :])).sum(1) + 1.0 / (p + 1.0))
        new /= np.exp(np.log(new).mean())
        if np.abs(new - p).max() < tol:
            p = new
            break
        p = new
    return {m: 1000 + 400 * math.log(p[idx[m]], 10) for m in models}


def arena_votes(n=800, seed=0):
    rng = random.Random(seed)
    strength = {"base": 0.0, "run-a": 0.5, "run-b": 1.0, "run-c": -0.3}
    votes = []
    for _ in range(n):
        x, y = sorted(rng.sample(list(strength), 2))
        p = 1 / (1 + 10 ** (strength[y] - strength[x]))
        r = rng.random()
        votes.append({"system_a": x, "system_b": y, "winner": "a" if r < 0.9 * p else ("tie" if r < 0.9 * p + 0.1
                                                                                      else "b")})
    return votes


@pytest.mark.integration
def test_bradley_terry_by_logistic_regression_matches_the_old_fit():
    votes = arena_votes()
    old = old_bradley_terry(votes)
    battles = human.Battles.of(votes)
    new = dict(zip(battles.models, human.bradley_terry(battles)))
    for m in old:
        assert new[m] == pytest.approx(old[m], abs=0.1), m
    board = human.leaderboard(votes)
    assert [r["model"] for r in board] == sorted(old, key=lambda m: -old[m])
    assert all(r["ci_low"] <= r["rating"] <= r["ci_high"] for r in board)


def test_a_model_that_never_wins_gets_a_finite_rating():
    votes = [{"system_a": "a", "system_b": "b", "winner": "a"}] * 20
    board = {r["model"]: r for r in human.leaderboard(votes)}
    assert math.isfinite(board["b"]["rating"]) and board["a"]["rating"] > board["b"]["rating"]


def old_interval(values, seed=0, resamples=1000):
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    reps = values[draws].mean(1)
    return np.percentile(reps, 2.5), np.percentile(reps, 97.5)


def test_scipy_bootstrap_intervals_match_the_old_loop():
    values = np.random.default_rng(3).random(400)
    metric = M._mean_metric(values)
    new = M.interval(metric, seed=0)
    lo, hi = old_interval(values)
    assert new.value == pytest.approx(values.mean())
    assert new.ci_low == pytest.approx(lo, abs=0.01) and new.ci_high == pytest.approx(hi, abs=0.01)
    rows = [{"system": "s", "quality": int(v * 5) + 1, "relevance": None, "coherence": None, "helpfulness": None}
            for v in values]
    likert = human.likert_summary(rows)[0]
    lo, hi = old_interval(np.array([r["quality"] for r in rows], float))
    assert likert["ci_low"] == pytest.approx(lo, abs=0.05) and likert["ci_high"] == pytest.approx(hi, abs=0.05)


def test_bleu_from_public_sentence_statistics_equals_corpus_bleu_on_any_resample():
    import sacrebleu

    rng = random.Random(1)
    words = "a cat sat on the mat with red hat near big dog".split()
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) for _ in range(40)]
    hyps = [" ".join(w if rng.random() < 0.7 else rng.choice(words) for w in r.split()) for r in refs]
    metric, _ = M.bleu(hyps, refs)
    pick = [rng.randrange(40) for _ in range(40)]
    expected = sacrebleu.corpus_bleu([hyps[i] for i in pick], [[refs[i] for i in pick]]).score
    assert metric.reduce(metric.stats[pick]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("method", [{"kind": "lora", "target_modules": "all-linear"},
                                    {"kind": "lora", "target_modules": "auto", "lora_r": 4},
                                    {"kind": "lora", "target_modules": ["q_proj", "v_proj"], "use_dora": True}])
def test_estimate_counts_what_peft_trains(method, tiny_path):
    from studio.engine import models
    from studio.engine.train.estimate import estimate

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "qa.csv", method=method))
    resolved = models.resolve_model(cfg.model)
    real = models.apply_method(models.load_model(resolved, cfg.model, cfg.method, "fp32"), cfg.method, False)
    assert estimate(cfg).trainable == models.parameter_counts(real)[0]


@pytest.mark.integration
def test_model_card_front_matter_parses_with_huggingface_hub(tmp_path):
    from huggingface_hub import ModelCard

    from studio.engine.export.card import model_card
    from studio.engine.train import loop

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "qa.csv", train={"max_steps": 1}))
    run = loop.run(cfg, tmp_path / "r").run_dir
    votes = [{"system_a": "base", "system_b": "r", "winner": w, "item_id": i, "rater": f"p{i}"}
             for i, w in enumerate("bbbab")]
    card = model_card(run, cfg, votes=votes)
    (tmp_path / "README.md").write_text(str(card))
    again = ModelCard.load(tmp_path / "README.md")
    assert again.data.base_model == "studio-tiny" and again.data.library_name == "peft"
    assert again.data.studio_dataset == "qa.csv" and again.data.studio_dataset_hash.startswith("sha256:")
    assert "Human evaluation" in again.text and "python -m studio tiny" in again.text
    assert [row["model"] for row in again.data.human_leaderboard] == ["r", "base"]
    assert str(tmp_path) not in str(card)  # no server path leaves in a card
