"""Exports: the adapter zip loads with plain transformers + peft and gives the studio's logits; the
merged model equals the adapter model; the card loads with huggingface_hub's ModelCard with the metadata the hub
reads, the run's measured metrics and the people's verdict; quantized exports reload and generate; nothing
half-written is left behind."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, SAMPLES, tiny_config

from studio.config import StudioConfig
from studio.engine.export import exporters as E
from studio.engine.judge.generate import load_pair
from studio.engine.train import loop as train

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it

PROBE = "Add 12 and 30."
LOAD = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
folder = sys.argv[1]
base = json.load(open(folder + "/adapter_config.json"))["base_model_name_or_path"]
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), folder).eval()
tok = AutoTokenizer.from_pretrained(folder)
with torch.no_grad():
    print(json.dumps(model(**tok([sys.argv[2]], return_tensors="pt")).logits[0, -1].tolist()))
"""


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    cfg = tiny_config(SAMPLES / "instructions.json", train={"max_steps": 6, "learning_rate": 5e-3})
    return train.run(StudioConfig.from_dict(cfg), tmp_path_factory.mktemp("exp") / "run").run_dir


def tuned_logits(run, text=PROBE):
    pair = load_pair(run)
    with torch.no_grad():
        return pair.tuned(**pair.tokenizer([text], return_tensors="pt")).logits[0, -1].float()


def test_adapter_zip_loads_with_plain_transformers_and_peft(lora_run, tmp_path):
    z = E.export_adapter(lora_run, tmp_path / "a.zip")
    names = zipfile.ZipFile(z).namelist()
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md",
            "studio-config.yaml"} <= set(names)
    zipfile.ZipFile(z).extractall(tmp_path / "unzipped")
    config = json.loads((tmp_path / "unzipped" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "studio-tiny"  # a name that travels, not this machine's path
    made = subprocess.run([sys.executable, "-m", "studio", "tiny", "--out", str(tmp_path / "studio-tiny")],
                          capture_output=True, text=True, cwd=ROOT)  # the card's one line that rebuilds the base
    assert made.returncode == 0, made.stderr
    out = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "unzipped"), PROBE], capture_output=True,
                         text=True, cwd=tmp_path, check=True)  # a fresh process, no studio import
    theirs = torch.tensor(json.loads(out.stdout.strip().splitlines()[-1]))
    ours = tuned_logits(lora_run)
    assert torch.allclose(theirs, ours, atol=1e-5)
    card = zipfile.ZipFile(z).read("README.md").decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert meta["base_model"] == "studio-tiny" and meta["studio_dataset_hash"].startswith("sha256:")
    assert "lora" in meta["tags"] and "python -m studio tiny" in card and str(ROOT) not in card
    portable = yaml.safe_load(zipfile.ZipFile(z).read("studio-config.yaml"))
    assert portable["data"]["path"] == "instructions.json"  # no server path, no visitor id
    snippet = card.split("```python\n")[1].split("```")[0].replace("path/to/this/folder", str(tmp_path / "unzipped"))
    said = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert said.returncode == 0, said.stderr[-2000:]  # the card's "Use it" runs as written (beside studio-tiny/)


def test_the_card_loads_in_huggingface_hub_with_metrics_and_the_peoples_verdict(lora_run, tmp_path):
    """The zip's README as the hub reads it (``ModelCard.load``): base_model, library_name, pipeline_tag, tags, the
    model-index of the metrics the run measured, and the human leaderboard once people rated the run, in the
    metadata and the body; the Export tab's two paths (Download, push) and the merged export say the same."""
    from huggingface_hub import ModelCard

    from studio.config import EvalConfig
    from studio.engine.judge.evaluate import evaluate_run
    from studio.engine.judge.ratings import Ratings

    def card_of(zipped):
        (tmp_path / "README.md").write_bytes(zipfile.ZipFile(zipped).read("README.md"))
        return ModelCard.load(tmp_path / "README.md")

    card = card_of(E.export_adapter(lora_run, tmp_path / "before.zip", votes=[]))
    assert card.data.base_model == "studio-tiny" and card.data.library_name == "peft"
    assert card.data.pipeline_tag == "text-generation" and "lora" in card.data.tags
    assert card.data.to_dict().get("human_leaderboard") is None and "Human evaluation" not in card.text

    summary = evaluate_run(lora_run, limit=6, settings=EvalConfig(max_new_tokens=8, bertscore=False), name="card")
    db = Ratings(tmp_path / "ratings.sqlite")
    item = db.add_item("k1", "Add 2 and 3.", {"base": "five", lora_run.name: "5"})
    for i in range(6):
        db.vote(item, "base", lora_run.name, "b" if i < 5 else "a", f"rater{i}")
    db.vote(item, "base", "another-run", "a", "rater9")  # not about this run: not on its card
    zipped = E.export_adapter(lora_run, tmp_path / "after.zip", votes=db.votes())
    card = card_of(zipped)
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert set(results) == set(summary.tuned) and len(results) >= 4
    assert all(results[m] == pytest.approx(iv.value, abs=1e-6) for m, iv in summary.tuned.items())
    board = {row["model"]: row for row in card.data.to_dict()["human_leaderboard"]}
    assert set(board) == {"base", lora_run.name} and board[lora_run.name]["games"] == 6
    assert board[lora_run.name]["rating"] > board["base"]["rating"] and board["base"]["small_sample"] is True
    assert "## Human evaluation" in card.text and "another-run" not in card.text
    assert json.loads(zipfile.ZipFile(zipped).read("human_leaderboard.json"))[0]["model"] == lora_run.name

    merged = E.export_merged(lora_run, tmp_path / "merged", votes=db.votes())
    merged_card = ModelCard.load(Path(merged["path"]) / "README.md")
    assert merged_card.data.library_name == "transformers"
    assert merged_card.data.to_dict()["human_leaderboard"] == card.data.to_dict()["human_leaderboard"]


def test_merged_equals_adapter_and_reloads(lora_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = E.export_merged(lora_run, tmp_path / "merged", max_shard_size="1MB")
    assert result["max_abs_logit_diff"] < 1e-4
    shards = list((tmp_path / "merged").glob("model-*.safetensors"))
    assert len(shards) > 1  # sharded past the size
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        logits = merged(**tok([PROBE], return_tensors="pt")).logits[0, -1]
    assert (logits - tuned_logits(lora_run)).abs().max() < 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_exports_reload_and_generate(lora_run, tmp_path, bits):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = E.export_quantized(lora_run, bits, tmp_path / f"q{bits}")
    model = AutoModelForCausalLM.from_pretrained(path, device_map={"": "cpu"})
    tok = AutoTokenizer.from_pretrained(path)
    ids = model.generate(**tok([PROBE], return_tensors="pt"), max_new_tokens=5, do_sample=False)
    assert ids.shape[1] > len(tok(PROBE)["input_ids"])
    assert E.size_on_disk(path) < E.size_on_disk(E.export_root() / f"{lora_run.name}-merged")


def test_export_cli_and_push_offline(lora_run, tmp_path):
    out = subprocess.run([sys.executable, "-m", "studio", "export", str(lora_run), "--format", "adapter", "--out",
                          str(tmp_path / "cli.zip"), "--push", "someone/some-repo"], capture_output=True, text=True,
                         cwd=ROOT, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": "x"})
    assert (tmp_path / "cli.zip").is_file()
    assert out.returncode == 3 and out.stderr.count("\n") == 1 and "push" in out.stderr  # 3: the hub


def test_quantization_table(lora_run):
    rows = {r["export"]: r for r in E.quantization_table(lora_run, prompts=4, new_tokens=4)}
    assert set(rows) == {"fp32 (merged)", "int8", "nf4", "dynamic int8 (CPU)"}
    assert rows["nf4"]["size_mb"] < rows["int8"]["size_mb"] < rows["fp32 (merged)"]["size_mb"]
    for r in rows.values():
        assert r["tokens_per_s"] > 0
        assert abs(r["perplexity"] / rows["fp32 (merged)"]["perplexity"] - 1) < 0.1
