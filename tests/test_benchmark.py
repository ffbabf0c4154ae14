"""Standard benchmarks base vs tuned on lm-evaluation-harness: a run trained on facts gains on a local task about
them (the paired interval above 0) and shows no clear change on the studio's general check; the JSON contract, the
model card's model-index, a task YAML whose data sit beside it, the public deployment's limits, and a one-line
refusal for a hub task offline."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, tiny_config, write_jsonl

from studio.engine.errors import StudioError
from studio.engine.judge import benchmark as BM

COUNTRIES = ["France", "Italy", "Spain", "Germany", "Austria", "Portugal", "Greece", "Ireland", "Norway", "Poland",
             "Czechia", "Hungary", "Finland", "Sweden", "Denmark", "Belgium", "the Netherlands", "Switzerland",
             "Bulgaria", "Latvia"]
CITIES = ["Paris", "Rome", "Madrid", "Berlin", "Vienna", "Lisbon", "Athens", "Dublin", "Oslo", "Warsaw", "Prague",
          "Budapest", "Helsinki", "Stockholm", "Copenhagen", "Brussels", "Amsterdam", "Bern", "Sofia", "Riga"]
TASK_YAML = """task: capitals_of_the_run
dataset_path: json
dataset_kwargs:
  data_files:
    test: capitals.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def facts_and_task(folder: Path) -> tuple[Path, Path]:
    """(training rows: one fact a country, a task YAML asking each of them with four answers to choose from, its
    data beside it as lm-eval's "local datasets" put it)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(folder / "facts.jsonl", [
        {"instruction": f"What is the capital of {c}?", "input": "", "output": f"The capital of {c} is {city}."}
        for c, city in zip(COUNTRIES, CITIES)])
    rng, items = random.Random(0), []
    for c, city in zip(COUNTRIES, CITIES):
        choices = [city, *rng.sample([x for x in CITIES if x != city], 3)]
        rng.shuffle(choices)
        items.append({"question": f"What is the capital of {c}?", "answer": choices.index(city),
                      "choices": [f"The capital of {c} is {x}." for x in choices]})
    write_jsonl(folder / "capitals.jsonl", items)
    (folder / "capitals.yaml").write_text(TASK_YAML)
    return data, folder / "capitals.yaml"


def train_on_facts(data: Path, out: Path) -> Path:
    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = tiny_config(data, data={"val_size": 0}, method={"kind": "lora", "target_modules": "all-linear",
                                                          "lora_r": 16},
                      train={"max_steps": 60, "batch_size": 8, "learning_rate": 5e-3, "logging_steps": 10})
    result = train.run(StudioConfig.from_dict(cfg), out)
    assert result.state == "completed"
    return result.run_dir


def test_a_task_yaml_reads_its_data_from_beside_it_and_names_are_checked(tmp_path):
    _, task = facts_and_task(tmp_path / "t")
    names, include = BM.task_sources([str(task), "studio-general", "hellaswag"], tmp_path / "inc")
    assert names == ["capitals_of_the_run", "studio-general", "hellaswag"]
    copied = next(p for p in include if (p / "capitals.yaml").is_file()) / "capitals.yaml"
    assert f"test: {(tmp_path / 't' / 'capitals.jsonl').resolve()}" in copied.read_text()
    assert "studio_general.jsonl" in (include[0] / "studio-general.yaml").read_text()  # the bundled task, localised
    (tmp_path / "bad.yaml").write_text("dataset_path: json\n")
    with pytest.raises(Exception, match="names its task"):
        BM.task_sources([str(tmp_path / "bad.yaml")], tmp_path / "inc2")


def test_the_verdict_is_forgot_only_when_the_tuned_model_is_surely_worse():
    base = {i: 1.0 for i in range(40)}
    assert BM.paired(base, {i: 0.0 if i < 30 else 1.0 for i in range(40)})["verdict"] == "forgot"
    assert BM.paired(base, {i: 0.0 if i < 1 else 1.0 for i in range(40)})["verdict"] == "no clear change"
    got = BM.paired({i: 0.0 for i in range(40)}, base)
    assert got["verdict"] == "gained" and got["n"] == 40 and got["ci_low"] > 0 and got["delta"] == 1.0


def test_a_public_visitor_runs_the_studios_own_benchmark_only(monkeypatch):
    from studio.engine import gate

    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    assert gate.check_benchmark(["studio-general"], None) == (["studio-general"], gate.MAX_BENCHMARK_ITEMS)
    for other in ("/etc/task.yaml", "hellaswag"):
        with pytest.raises(StudioError, match="studio's own benchmark"):
            gate.check_benchmark([other], 10)


@pytest.mark.integration
def test_a_run_trained_on_facts_gains_on_them_and_forgets_nothing_general(tmp_path, monkeypatch):
    data, task = facts_and_task(tmp_path / "facts")
    run = train_on_facts(data, tmp_path / "run")
    out = subprocess.run([sys.executable, "-m", "studio", "benchmark", str(run), "--tasks",
                          f"{task},studio-general", "--name", "first", "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    got = {r["task"]: r for r in json.loads(out.stdout)["tasks"]}
    for r in got.values():
        assert set(r) >= {"task", "metric", "base", "tuned", "delta", "ci_low", "ci_high", "p", "n"}
    facts, general = got["capitals_of_the_run"], got["studio-general"]
    assert facts["n"] == 20 and facts["tuned"] > facts["base"] and facts["ci_low"] > 0 and facts["p"] < 0.05
    assert facts["verdict"] == "gained"
    assert general["n"] == 160 and general["ci_low"] <= 0 <= general["ci_high"]
    assert general["verdict"] == "no clear change"
    from studio.config import StudioConfig
    from studio.engine import runs
    from studio.engine.export.card import model_card

    assert runs.benchmarks(run)[-1] == "first"
    card = model_card(run, StudioConfig.load(run / "config.yaml"))
    index = card.data.to_dict()["model-index"][0]["results"]
    assert {r["dataset"]["name"] for r in index} >= {"capitals_of_the_run", "studio-general"}
    assert "## Benchmarks" in card.content and "| gained |" in card.content

    group = tmp_path / "facts" / "group"  # a folder with a group of two tasks: the group is one row, paired
    group.mkdir()
    for part in ("one", "two"):
        (group / f"{part}.yaml").write_text(TASK_YAML.replace("capitals_of_the_run", f"part_{part}")
                                            .replace("capitals.jsonl", "../capitals.jsonl"))
    (group / "group.yaml").write_text("group: both_parts\ntask:\n  - part_one\n  - part_two\n")
    from studio.engine.judge.benchmark import benchmark

    both = benchmark(run, [str(group)], limit=3, name="group")["tasks"]
    assert [(r["task"], r["n"]) for r in both] == [("both_parts", 6)]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub task offline: one line, no traceback
    out = subprocess.run([sys.executable, "-m", "studio", "benchmark", str(run), "--tasks", "arc_easy",
                          "--limit", "2"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "cannot reach" in out.stderr or "hub" in out.stderr, out.stderr[-500:]
