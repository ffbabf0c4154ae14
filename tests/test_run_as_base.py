"""One of your runs as the next run's base (model.name run:<name>): a full run is its model folder, an adapter
run is merged into its base once; on a public deployment only the visitor's own runs, with one answer for a run
that is someone else's and a run that is not there."""

import json
import shutil

import pytest
import torch
from conftest import SAMPLES, tiny_config

from studio.config import ModelConfig, StudioConfig
from studio.engine import runs
from studio.engine.errors import ModelError
from studio.engine.export.exporters import export_adapter
from studio.engine.models import resolve_model, run_reference
from studio.engine.train import loop as train

pytestmark = pytest.mark.slow  # trains several small models


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    cfg = tiny_config(SAMPLES / "instructions.json", train={"max_steps": 6, "learning_rate": 5e-3})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path_factory.mktemp("base") / "first", owner="alice")
    assert result.state == "completed"
    return result.run_dir


def logits(model, text="Name a colour."):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model.name_or_path)
    with torch.no_grad():
        return model(**tok([text], return_tensors="pt")).logits


def test_an_adapter_run_becomes_a_base_equal_to_base_plus_adapter(first):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    resolved = resolve_model(ModelConfig(name=run_reference(first.name)))
    assert resolved.source == "run" and resolved.path == first / "as-base"
    merged = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(resolve_model(ModelConfig(name="studio-tiny")).path,
                                                dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, first / "adapter")
    assert (logits(merged) - logits(tuned)).abs().max() < 1e-4
    assert resolve_model(ModelConfig(name=run_reference(first.name))).path == resolved.path  # merged once


def test_a_run_trains_from_another_and_its_export_names_that_base(first, tmp_path):
    cfg = tiny_config(SAMPLES / "instructions.json", model={"name": run_reference(first.name)})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path / "second")
    assert result.state == "completed", result.error
    assert runs.read_status(result.run_dir)["model_source"] == "run"
    with __import__("zipfile").ZipFile(export_adapter(result.run_dir, tmp_path / "a.zip")) as z:
        assert json.loads(z.read("adapter_config.json"))["base_model_name_or_path"] == f"{first.name}-merged"


def test_a_public_visitor_gets_their_own_runs_only_and_one_answer(first, monkeypatch):
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    answers = {}
    for who, name in (("alice", first.name), ("bob", first.name), ("bob", "no-such-run"), (None, first.name)):
        token = runs.ACTING.set(who)
        try:
            answers[(who, name)] = resolve_model(ModelConfig(name=run_reference(name)), config_only=True)
        except ModelError as e:
            answers[(who, name)] = str(e).replace(name, "<run>")
        finally:
            runs.ACTING.reset(token)
    assert answers[("alice", first.name)].source == "run"
    assert "not a model you can use here" in answers[("bob", first.name)]
    assert answers[("bob", first.name)] == answers[("bob", "no-such-run")] == answers[(None, first.name)]


def test_a_virtual_token_run_cannot_be_a_base(first, tmp_path):
    fake = tmp_path / "prefix-run"
    shutil.copytree(first, fake, ignore=shutil.ignore_patterns("as-base", "checkpoint-*"))
    cfg = StudioConfig.load(fake / "config.yaml")
    cfg.method.kind = "prefix"
    (fake / "config.yaml").write_text(cfg.to_yaml())
    runs.register(fake)
    with pytest.raises(ModelError, match="prefix run cannot be a base model"):
        resolve_model(ModelConfig(name=run_reference(fake.name)))
