"""Each metric equals its reference library; intervals contain their estimates; the paired test
separates a clearly better system from an identical one."""

import random

import numpy as np
import pytest

from studio.engine.judge import metrics as M

WORDS = "the cat sat on a mat with hat and bat near big red dog running quickly".split()


@pytest.fixture(scope="module")
def pairs():
    rng = random.Random(0)
    refs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) for _ in range(60)]
    good = [" ".join(w if rng.random() < 0.8 else rng.choice(WORDS) for w in r.split()) for r in refs]
    bad = [" ".join(w if rng.random() < 0.3 else rng.choice(WORDS) for w in r.split()) for r in refs]
    return refs, good, bad


def test_bleu_is_sacrebleu(pairs):
    import sacrebleu

    refs, good, _ = pairs
    metric, signature = M.bleu(good, refs)
    assert metric.value == pytest.approx(sacrebleu.corpus_bleu(good, [refs]).score, abs=1e-9)
    assert signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")


def test_rouge_is_rouge_score_with_stemming(pairs):
    from rouge_score import rouge_scorer

    refs, good, _ = pairs
    ours = M.rouge(good, refs)
    scorer = rouge_scorer.RougeScorer(list(M.ROUGE), use_stemmer=True)
    for key in M.ROUGE:
        expected = np.mean([scorer.score(r, h)[key].fmeasure for h, r in zip(good, refs)])
        assert ours[key].value == pytest.approx(expected, abs=1e-12)


@pytest.mark.integration
def test_meteor_is_nltk_with_wordnet(pairs):
    from nltk.translate.meteor_score import meteor_score

    from studio.engine.judge.wordnet import wordnet

    wn = wordnet()
    assert wn is not None, "WordNet should come from Debian's wordnet-base (.ci/run installs it)"
    refs, good, _ = pairs
    metric, synonyms = M.meteor(good, refs)
    expected = np.mean([meteor_score([r.split()], h.split(), wordnet=wn) for h, r in zip(good, refs)])
    assert synonyms and metric.value == pytest.approx(expected, abs=1e-12)
    assert wn.synsets("dog")[0].lexname() == "noun.animal"  # the generated lexnames file is right


def test_meteor_without_wordnet_says_so(pairs, monkeypatch):
    from studio.engine.judge import wordnet

    monkeypatch.setattr(wordnet, "wordnet", lambda: None)
    refs, good, _ = pairs
    scored = M.score_texts(good[:5], refs[:5], bertscore_on=False)
    assert scored.info["meteor"] == "METEOR (no synonyms)"


@pytest.mark.integration
def test_bertscore_is_bert_score_on_the_same_model(pairs):
    from bert_score import score

    refs, good, _ = pairs
    model, layers = M.bertscore_model()
    ours = M.bertscore(good[:20], refs[:20])
    p, r, f = score(good[:20], refs[:20], model_type=model, num_layers=layers)
    for name, t in zip(M.BERTSCORE, (p, r, f)):
        assert ours[name].value == pytest.approx(float(t.mean()), abs=1e-6)


def test_exact_match_and_token_f1():
    assert M.normalize_answer("The  Cat!") == "cat"
    assert M.token_f1("the cat sat", "a cat sat down") == pytest.approx(2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))
    assert M.token_f1("", "") == 1.0 and M.token_f1("x", "") == 0.0


@pytest.mark.integration  # the bootstrap of every metric (BLEU recomputed per resample): seconds
def test_every_interval_contains_its_estimate_and_resamples_whole_examples(pairs):
    refs, good, _ = pairs
    scored = M.score_texts(good, refs, bertscore_on=False)
    scored.metrics["perplexity"] = M.perplexity_metric([2.0 * len(r.split()) for r in refs],
                                                       [len(r.split()) for r in refs])
    for name, metric in scored.metrics.items():
        ci = M.interval(metric, seed=1)
        assert ci.ci_low <= ci.value <= ci.ci_high, name
    ppl = scored.metrics["perplexity"]
    assert ppl.value == pytest.approx(np.exp(2.0))  # token-weighted
    from sacrebleu.metrics import BLEU

    pick = np.random.default_rng(3).integers(0, len(refs), len(refs))  # one bootstrap resample, repeats and all
    resampled = M._statistic(scored.metrics["bleu"])(pick[None, :])
    corpus = BLEU().corpus_score([good[i] for i in pick], [[refs[i] for i in pick]]).score
    assert float(resampled) == pytest.approx(corpus)  # a resample is sacrebleu's corpus BLEU of those sentences


@pytest.mark.integration
def test_a_95_percent_interval_covers_the_truth_about_95_percent_of_the_time():
    """Coverage on data whose mean is known: 300 samples of 40 examples, each right with probability 0.3."""
    rng = np.random.default_rng(0)
    covered = [lo <= 0.3 <= hi for lo, hi in
               ((ci.ci_low, ci.ci_high) for ci in (M.interval(M._mean_metric(rng.random(40) < 0.3), seed=s,
                                                              resamples=400) for s in range(300)))]
    assert 0.88 <= np.mean(covered) <= 0.99, np.mean(covered)


def test_paired_test_small_p_for_better_large_for_identical(pairs):
    refs, good, bad = pairs
    for metric in ("bleu", "rougeL", "meteor", "token_f1"):
        better = M.score_texts(good, refs, bertscore_on=False).metrics[metric]
        worse = M.score_texts(bad, refs, bertscore_on=False).metrics[metric]
        test = M.paired(worse, better, seed=0)
        assert test.value > 0 and test.p_value < 0.01 and test.ci_low > 0, metric
        same = M.paired(better, better, seed=0)
        assert same.value == 0 and same.p_value == 1.0, metric
        wtl = M.win_tie_loss(worse, better, metric)
        assert wtl["win"] > wtl["loss"] and sum(wtl.values()) == len(refs)


def test_lexnames_from_the_man_page_format():
    from studio.engine.judge.wordnet import lexnames_from_man_page

    page = "00\tadj.all\tall adjective clusters\n18\tnoun.person  \tnouns denoting people\n44\tadj.ppl\tx\n"
    assert lexnames_from_man_page(page) == "00\tadj.all\t3\n18\tnoun.person\t1\n44\tadj.ppl\t3\n"


def test_bertscore_scores_an_empty_answer_zero_like_bert_score_says():
    ours = M.bertscore(["", "the cat sat"], ["a cat", "the cat sat"])
    assert ours["bertscore_f1"].per_example[0] == 0.0 and ours["bertscore_f1"].per_example[1] > 0.9


METRIC_SCRIPT = '''
import datasets
import evaluate


class Lenratio(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="", citation="", inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("string"),
                                                               "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        return {"length_ratio": sum(map(len, predictions)) / max(1, sum(map(len, references)))}
'''


@pytest.mark.integration
def test_a_local_evaluate_metric_is_added_and_an_unloadable_one_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "lenratio"
    folder.mkdir()
    (folder / "lenratio.py").write_text(METRIC_SCRIPT)
    scored = M.score_texts(["abc", "abcd"], ["abcdef", "abcd"], bertscore_on=False,
                           extra=[str(folder), "no-such-metric-anywhere"])
    assert scored.metrics["lenratio"].value == pytest.approx((0.5 + 1.0) / 2)
    assert "no-such-metric-anywhere" in scored.info["skipped_metrics"][0]
