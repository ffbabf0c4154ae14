"""What Compare says about the examples that got worse names the metric it measured them on."""

from studio.config import EvalConfig
from studio.engine.judge import metrics as M
from studio.engine.judge.evaluate import compare
from studio.ui.tabs.compare import worse_text


def rows(n: int) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": f"q{i}"}], "base": "a", "tuned": "b"} for i in range(n)]


def test_with_no_references_the_got_worse_list_is_on_the_reward_and_says_so():
    n = 12
    better = (M._mean_metric([0.0] * n), M._mean_metric([1.0] * n))  # every tuned answer scored higher
    summary, _ = compare(["a"] * n, ["b"] * n, [""] * n, None, None, EvalConfig(bertscore=False),
                         added={"reward": better})
    assert summary.got_worse == [] and summary.info["worse_metric"] == "reward"
    text = worse_text(summary, rows(n))
    assert "Nothing got worse on reward." in text and "rougeL" not in text


def test_the_got_worse_list_names_its_metric():
    n = 12
    worse = (M._mean_metric([1.0] * n), M._mean_metric([1.0] * (n - 1) + [0.0]))
    summary, _ = compare(["a"] * n, ["b"] * n, [""] * n, None, None, EvalConfig(bertscore=False),
                         added={"reward": worse})
    assert [w["index"] for w in summary.got_worse] == [n - 1]
    assert "**Got worse** on reward (1 of 12 examples)" in worse_text(summary, rows(n))
