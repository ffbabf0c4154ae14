"""RLHF's last two stages: a reward model (TRL's RewardTrainer, LoRA + a score head) that ranks chosen
above rejected on held-out pairs better than chance, and an RL stage (TRL's GRPO) against it that raises the
reward model's score of what the model writes. Impossible combinations are refused in a line."""

import json
import subprocess
import sys

import pytest
from conftest import SAMPLES, tiny_config

from studio.config import ConfigError, StudioConfig
from studio.engine import runs
from studio.engine.errors import ModelError
from studio.engine.models import run_reference
from studio.engine.train import loop as train
from studio.engine.train.defaults import with_defaults
from studio.engine.train.prepare import preflight

FEEDBACK = SAMPLES / "feedback.jsonl"

pytestmark = pytest.mark.slow  # trains several small models


def with_every_default(method: dict, out):
    """What Start does with nothing but the sample and the method picked: the model's defaults everywhere."""
    cfg, _ = with_defaults({"data": {"path": str(FEEDBACK)}, "method": method})
    result = train.run(cfg, out)
    assert result.state == "completed", result.error
    return result.run_dir


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory):
    return with_every_default({"kind": "reward"}, tmp_path_factory.mktemp("rm") / "reward")


def test_the_reward_model_learns_to_rank_chosen_above_rejected(reward_run):
    records = [m for m in runs.read_metrics(reward_run) if m.get("loss") is not None]
    assert records[-1]["loss"] < records[0]["loss"] and "accuracy" in records[-1]
    acc = runs.read_status(reward_run)["reward_accuracy"]
    assert acc["n"] >= 20 and acc["low"] > 0.5, acc  # better than chance on pairs it never saw


RELOAD = r"""
import json, sys
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from peft import PeftModel
folder, base = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
model.config.pad_token_id = tok.pad_token_id
model = PeftModel.from_pretrained(model, folder).eval()
def score(answer):
    text = tok.apply_chat_template([{"role": "user", "content": "Add 2 and 3."},
                                    {"role": "assistant", "content": answer}], tokenize=False)
    return model(**tok([text], return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()
print(json.dumps({"good": score("2 + 3 = 5."), "refusal": score("No idea, sorry.")}))
"""


def test_the_reward_adapter_reloads_with_plain_transformers_and_peft(reward_run, tiny_path):
    out = subprocess.run([sys.executable, "-c", RELOAD, str(reward_run / "adapter"), str(tiny_path)],
                         capture_output=True, text=True, timeout=300)
    scored = json.loads(out.stdout.strip().splitlines()[-1])
    assert scored["good"] > scored["refusal"], scored


@pytest.fixture(scope="module")
def rl_run(reward_run, tmp_path_factory):  # every default: 540 steps, about 3 minutes on 2 CPU cores
    return with_every_default({"kind": "rl", "reward_model": run_reference(reward_run.name)},
                              tmp_path_factory.mktemp("rl") / "rl")


def test_default_reward_and_rl_runs_end_measured_with_no_alarm(reward_run, rl_run):
    for run in (reward_run, rl_run):
        findings = runs.read_status(run).get("findings", [])
        assert not [f for f in findings if f["kind"] in ("dead", "instability", "poor_convergence")], findings
    acc = runs.read_status(reward_run)["reward_accuracy"]
    assert acc["low"] < acc["accuracy"] or acc["accuracy"] < acc["high"]  # an interval, even at 24 of 24
    measured = runs.read_status(rl_run)["rl_reward"]
    assert measured["difference"]["low"] > 0, measured  # the RL stage raised the reward of greedy answers


def test_the_rl_stage_raises_the_reward_of_what_the_model_writes(rl_run):
    logged = [m["reward"] for m in runs.read_metrics(rl_run) if m.get("reward") is not None]
    assert len(logged) >= 5
    got = runs.read_status(rl_run)["rl_reward"]
    assert got["tuned"]["mean"] > got["base"]["mean"], got  # greedy answers to held-out prompts score higher
    assert (rl_run / "adapter" / "adapter_config.json").is_file()


def test_impossible_combinations_are_one_line(reward_run, alpaca_file, tmp_path):
    with pytest.raises(ConfigError, match="needs method.reward_model"):
        StudioConfig.from_dict(tiny_config(FEEDBACK, method={"kind": "rl"}))
    with pytest.raises(ConfigError, match="multiple of method.num_generations"):
        StudioConfig.from_dict(tiny_config(FEEDBACK, method={"kind": "rl", "reward_model": "run:x",
                                                             "num_generations": 3}))
    text = tmp_path / "notes.txt"
    text.write_text("Plain text has no prompts.\n\nNone at all.\n")
    with pytest.raises(ConfigError, match="plain text has no prompts"):
        preflight(StudioConfig.from_dict(tiny_config(text, method={"kind": "rl",
                                                                   "reward_model": run_reference(reward_run.name)})))
    sft = run_reference(train.run(StudioConfig.from_dict(tiny_config(alpaca_file)), tmp_path / "sft").run_dir.name)
    with pytest.raises(ModelError, match="lora run, not a reward model"):
        preflight(StudioConfig.from_dict(tiny_config(FEEDBACK, method={"kind": "rl", "reward_model": sft})))
    with pytest.raises(ConfigError, match="needs preference data"):
        preflight(StudioConfig.from_dict(tiny_config(alpaca_file, method={"kind": "reward"})))


def test_the_estimate_covers_the_reward_model_and_the_rl_stage():
    from studio.engine.train.estimate import estimate

    lora = estimate(StudioConfig.from_dict(tiny_config(FEEDBACK)))
    reward = estimate(StudioConfig.from_dict(tiny_config(FEEDBACK, method={"kind": "reward"})))
    rl = estimate(StudioConfig.from_dict(tiny_config(FEEDBACK, method={"kind": "rl", "reward_model": "run:x"})))
    assert 0 < reward.params - lora.params <= 1024  # a one-score head (hidden size x 1) beside the tied embeddings
    assert reward.trainable > lora.trainable  # LoRA plus the score head, trained whole
    assert rl.weights_mb > lora.weights_mb and rl.activations_mb > lora.activations_mb  # reward model, samples


def test_a_reward_run_says_what_it_is_where_answers_are_expected(reward_run):
    from studio.engine.errors import StudioError
    from studio.engine.export.exporters import export_merged
    from studio.engine.judge.generate import load_pair

    with pytest.raises(ModelError, match=r"is a reward model: it scores answers.*held-out pairs"):
        load_pair(reward_run)  # Compare and Chat
    with pytest.raises(StudioError, match="export its adapter"):
        export_merged(reward_run)
    with pytest.raises(ModelError, match="does not write them"):
        from studio.config import ModelConfig
        from studio.engine.models import resolve_model

        resolve_model(ModelConfig(name=run_reference(reward_run.name)))
    from studio.engine.export.card import model_card

    card = str(model_card(reward_run, StudioConfig.load(reward_run / "config.yaml")))
    assert "pipeline_tag: text-classification" in card and "AutoModelForSequenceClassification" in card
    assert "text-generation" not in card and "studio serve" not in card  # nothing to generate with or serve


def test_compare_scores_every_answer_with_a_chosen_reward_model(rl_run, reward_run):
    from studio.config import EvalConfig
    from studio.engine.judge.evaluate import evaluate_run

    settings = EvalConfig(limit=24, bertscore=False, max_new_tokens=24, reward_model=run_reference(reward_run.name))
    summary = evaluate_run(rl_run, settings=settings)
    assert summary.tuned["reward"].value > summary.base["reward"].value  # what the RL stage optimised
    assert summary.delta["reward"].ci_low <= summary.delta["reward"].value <= summary.delta["reward"].ci_high
    assert "rougeL" in summary.tuned  # the reference metrics stay
    typed = evaluate_run(rl_run, prompts=["Add 3 and 4.", "What day comes after Monday?"], settings=settings)
    assert set(typed.tuned) == {"reward"} and "reward model only" in typed.note  # no references needed


def test_the_train_chart_shows_the_reward_beside_the_loss(rl_run, reward_run):
    from studio.ui.charts import loss_figure

    for run, name in ((rl_run, "mean reward of samples (RL)"), (reward_run, "pair accuracy (reward model)")):
        fig = loss_figure(runs.read_metrics(run)).to_dict()
        trace = next(t for t in fig["data"] if t["name"] == name)
        assert trace["yaxis"] == "y2" and len(trace["y"]) >= 3 and fig["layout"]["yaxis2"]["side"] == "right"


def test_the_rl_run_reports_reward_not_loss_troubles(rl_run):
    status = runs.read_status(rl_run)
    assert not [f for f in status.get("findings", []) if f["kind"] in ("instability", "poor_convergence")]
    assert all(m["tokens_per_s"] > 0 for m in runs.read_metrics(rl_run) if m.get("loss") is not None)
