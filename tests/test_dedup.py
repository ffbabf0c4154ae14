"""Duplicates and leakage: exact and near-duplicate prompts found with their row numbers, each group of them kept on
one side of the train / validation split, and an evaluation that says how many of its prompts the run trained on
and never calls a metric better on those alone."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, tiny_config, write_jsonl
from test_benchmark import CITIES, COUNTRIES

from studio.engine.data import dedup
from studio.engine.data.split import split_indices
from studio.engine.judge.summary import Delta, EvalSummary

WORDINGS = ("Tell me the capital of {c}.", "Tell me the capital of {c}, please.", "Please tell me the capital of {c}!")


def reworded_rows():
    """Every prompt three times, in slightly different wording (with the same answer)."""
    return [{"instruction": w.format(c=country), "input": "", "output": f"The capital of {country} is {city}."}
            for country, city in zip(COUNTRIES, CITIES) for w in WORDINGS]


def test_reworded_prompts_are_one_group_and_a_filled_template_is_not():
    texts = [w.format(c="France") for w in WORDINGS] + ["What is 2+2?", "what is 2 + 2"]
    texts += [f"Add 12 and {n}." for n in (12, 59, 71)] + ["Reverse the word below.\ncandle",
                                                           "Reverse the word below.\ncastle"]
    assert dedup.groups(texts) == [[0, 1, 2], [3, 4]]  # the reworded question; the same once normalised
    assert dedup.normalise("  What IS 2+2?? ") == "what is 2 2"
    flags = dedup.overlap(texts[:3], ["TELL ME the capital of France", "Now tell me the capital of France.",
                                      "Tell me the capital of Spain."])
    assert flags == ["exact", "near", None] and dedup.counts(flags) == {"exact": 1, "near": 1}


def test_the_split_keeps_every_group_on_one_side_and_is_unchanged_without_groups():
    order = list(range(50))
    random.Random(3).shuffle(order)
    assert split_indices(50, 0.2, 3) == (sorted(order[10:]), sorted(order[:10]))  # what every earlier run made
    rows = reworded_rows()
    groups = dedup.groups([dedup.prompt_text(r) for r in rows])
    assert sorted(map(len, groups)) == [3] * 20
    for seed in range(5):
        train, val = split_indices(len(rows), 0.2, seed, groups)
        assert len(val) == 12 and not set(train) & set(val)
        assert all(set(g) <= set(train) or set(g) <= set(val) for g in groups)  # no group on both sides
    train, val = split_indices(10, 0.2, 0, [list(range(10))])  # one prompt everywhere: no split keeps it whole
    assert len(val) == 2 and (train, val) == split_indices(10, 0.2, 0)  # then row by row, as before (and said)


def test_check_data_reports_duplicates_with_row_numbers(tmp_path):
    rows = reworded_rows()[:6] + [{"instruction": "tell me the capital of france", "input": "",
                                   "output": "The capital of France is Paris"}]  # row 1 again, set aside case
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    out = subprocess.run([sys.executable, "-m", "studio", "check-data", str(path), "--json"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["duplicates"] == 1 and got["near_duplicates"] == 4  # lines 2, 3 and 5, 6 reword lines 1 and 4
    assert got["duplicate_groups"] == [[1, 2, 3, 7], [4, 5, 6]]  # the file's own line numbers
    text = subprocess.run([sys.executable, "-m", "studio", "check-data", str(path)], capture_output=True, text=True,
                          cwd=ROOT).stdout
    assert "line 1, line 2, line 3, line 7; line 4, line 5, line 6" in text


def test_better_is_said_only_when_the_prompts_it_did_not_train_on_say_so():
    s = EvalSummary(delta={"rougeL": Delta(0.2, 0.1, 0.3, 0.001)}, overlap_with_training={"exact": 5, "near": 0})
    assert s.verdict("rougeL") == "better only on prompts it trained on"  # every prompt was seen: memory
    s.delta_unseen = {"rougeL": Delta(0.05, -0.02, 0.1, 0.3)}
    assert s.verdict("rougeL") == "better only on prompts it trained on"  # the unseen ones do not say so
    s.delta_unseen = {"rougeL": Delta(0.15, 0.05, 0.25, 0.01)}
    assert s.verdict("rougeL") == "better"
    s.overlap_with_training = {"exact": 5, "near": 0, "left_out": True}
    s.delta_unseen = {}
    assert s.verdict("rougeL") == "better"  # the seen ones were left out: what was compared is new to the run
    assert EvalSummary.from_dict(s.to_dict()).overlap_with_training == s.overlap_with_training
    s.overlap_with_training = {"exact": None, "near": None, "left_out": False, "unknown": "the data changed"}
    assert s.seen() == 0 and s.verdict("rougeL") == "better"  # nothing known to hold against it (and said so)


@pytest.mark.integration
def test_a_run_on_reworded_prompts_holds_none_of_them_out_and_a_copied_file_is_all_overlap(tmp_path):
    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    data = write_jsonl(tmp_path / "capitals.jsonl", reworded_rows())
    cfg = tiny_config(data, data={"max_length": 64, "val_size": 0.2}, train={"max_steps": 2})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path / "run")
    assert result.state == "completed"

    def evaluate(*args):
        out = subprocess.run([sys.executable, "-m", "studio", "evaluate", str(result.run_dir), *args, "--set",
                              "eval.max_new_tokens=4", "--set", "eval.bertscore=false", "--json"],
                             capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    held_out = evaluate()  # the validation split: no group on both sides, so nothing it trained on
    assert held_out["examples"] == 12 and held_out["overlap_with_training"] == {"exact": 0, "near": 0,
                                                                                 "left_out": False}
    train_rows = [json.loads(x) for x in data.read_text().splitlines()]
    split = json.loads((result.run_dir / "split.json").read_text())
    copied = write_jsonl(tmp_path / "copied.jsonl", [train_rows[i] for i in split["train"][:10]])
    seen = evaluate("--data", str(copied))
    assert seen["overlap_with_training"] == {"exact": 10, "near": 0, "left_out": False}
    rows = [json.loads(x) for x in (Path(seen["dir"]) / "predictions.jsonl").read_text().splitlines()]
    assert [r["seen_in_training"] for r in rows] == ["exact"] * 10  # each row says so (the table marks it)
    reworded = write_jsonl(tmp_path / "reworded.jsonl", [
        {**train_rows[i], "instruction": train_rows[i]["instruction"].replace("Tell me", "Please tell me")}
        for i in split["train"][:4]] + [{"instruction": "Name a colour.", "input": "", "output": "Blue."}] * 2)
    mixed = evaluate("--data", str(reworded))
    assert mixed["overlap_with_training"]["exact"] + mixed["overlap_with_training"]["near"] == 4
    kept = evaluate("--data", str(reworded), "--leave-out-seen")
    assert kept["examples"] == 2 and kept["overlap_with_training"]["left_out"] is True
