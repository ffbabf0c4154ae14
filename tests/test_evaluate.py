"""Base vs tuned end to end: after a short full fine-tune on a templated task the tuned model
beats the base on ROUGE-L; the eval folder follows docs/architecture.md; the CLI prints it."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES, tiny_config

from studio.config import EvalConfig, StudioConfig
from studio.engine import runs
from studio.engine.judge.evaluate import evaluate_run
from studio.engine.judge.summary import read_eval
from studio.engine.train import loop as train

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    cfg = tiny_config(SAMPLES / "instructions.json", data={"max_length": 64, "val_size": 0.1},
                      method={"kind": "full"},
                      train={"max_steps": 120, "batch_size": 16, "learning_rate": 2e-3, "logging_steps": 10})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path_factory.mktemp("eval") / "run")
    assert result.state == "completed"
    return result.run_dir


def test_tuned_beats_base_and_the_eval_folder_follows_the_contract(tuned_run):
    s = evaluate_run(tuned_run, limit=24, settings=EvalConfig(max_new_tokens=24, bertscore=False), name="val")
    assert s.tuned["rougeL"].value > s.base["rougeL"].value
    assert s.delta["rougeL"].p_value < 0.05 and s.delta["rougeL"].ci_low > 0 and s.verdict("rougeL") == "better"
    assert s.tuned["perplexity"].value < s.base["perplexity"].value and s.verdict("perplexity") == "better"
    folder = tuned_run / "eval" / "val"
    assert runs.evals(tuned_run) == ["val"] and s.dir == str(folder)
    again, rows = read_eval(tuned_run, "val")
    assert again.to_dict() == s.to_dict() and again.dir == s.dir and len(rows) == 24
    summary = json.loads((folder / "summary.json").read_text())
    for side in ("base", "tuned"):
        assert set(summary[side]["bleu"]) == {"value", "ci_low", "ci_high"}
    assert set(summary["delta"]["meteor"]) == {"value", "ci_low", "ci_high", "p_value"}
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {"prompt", "reference", "base", "tuned", "scores"} <= set(rows[0])
    assert "rougeL" in rows[0]["scores"]["tuned"] and "bleu" in rows[0]["scores"]["base"]
    # this machine now knows how long comparing on this run takes: the next one's estimate, per example
    from studio.engine.judge.evaluate import expected_seconds

    settings = EvalConfig(max_new_tokens=24, bertscore=False)
    assert 0 < expected_seconds(tuned_run, settings, 12) < expected_seconds(tuned_run, settings, 24) < 600
    assert expected_seconds(tuned_run, settings, 24, fresh_process=True) > expected_seconds(tuned_run, settings, 24)


def test_evaluate_cli_on_a_file(tuned_run):
    out = subprocess.run([sys.executable, "-m", "studio", "evaluate", str(tuned_run), "--data",
                          str(SAMPLES / "qa.csv"), "--limit", "8", "--set", "eval.max_new_tokens=16",
                          "--set", "eval.bertscore=false", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["examples"] == 8 and s["eval_set"].endswith("qa.csv") and "bleu_signature" in s["info"]


def test_prompt_effectiveness_reports_each_phrasing(tuned_run):
    from studio.engine.judge.prompts import prompt_effectiveness

    greedy = prompt_effectiveness(tuned_run, ["{input}", "Please: {input}"], k=3, limit=6,
                                  settings=EvalConfig(max_new_tokens=12, do_sample=False))
    assert [t["template"] for t in greedy["templates"]] == ["{input}", "Please: {input}"]
    for row in greedy["templates"]:
        assert row["consistency"] == 1.0  # greedy decoding: the K answers agree
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["exact_match"] <= 1 and row["output_tokens"] > 0
    first, second = greedy["templates"]
    assert second["prompt_tokens"] > first["prompt_tokens"]  # "Please: " costs tokens
    assert greedy["robustness"]["accuracy_range"] == pytest.approx(abs(first["accuracy"] - second["accuracy"]))
    sampled = prompt_effectiveness(tuned_run, ["{input}"], k=4, limit=6,
                                   settings=EvalConfig(max_new_tokens=12, do_sample=True, temperature=1.5))
    assert sampled["templates"][0]["consistency"] <= 1.0 and sampled["sampling"] is True
    from studio.engine.errors import DataError

    with pytest.raises(DataError, match="placeholder"):
        prompt_effectiveness(tuned_run, ["no placeholder here"], k=1, limit=2)
