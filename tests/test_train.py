"""Real training on studio-tiny, a few CPU steps each: methods, objectives, stop, NaN, resume, OOM."""

import json
import shutil

import pytest
import torch
from conftest import SAMPLES, tiny_config

from studio.config import StudioConfig
from studio.engine import runs
from studio.engine.data.split import Split
from studio.engine.events import Metrics, StateChanged, TrainingInfo
from studio.engine.train import loop as train


def build(cfg_dict, tmp_path):
    cfg = StudioConfig.from_dict(cfg_dict)
    prepared = train.prepare(cfg)
    trainer, model = train._build_trainer(prepared, runs.new_run_dir(cfg, tmp_path / "run"), lambda e: None,
                                          lambda: False)
    return trainer, model


@pytest.mark.parametrize("kind, extra", [("full", {}), ("lora", {}), ("qlora", {}), ("qlora", {"quant_bits": 8}),
                                         ("lora", {"gradient_checkpointing": True}),
                                         ("full", {"gradient_checkpointing": True})],
                         ids=["full", "lora", "qlora-nf4", "qlora-8bit", "lora-ckpt", "full-ckpt"])
@pytest.mark.integration
def test_each_method_trains_what_it_should(kind, extra, alpaca_file, tmp_path):
    method = {"kind": kind, **{k: v for k, v in extra.items() if k != "gradient_checkpointing"}}
    train_over = {k: v for k, v in extra.items() if k == "gradient_checkpointing"}
    trainer, model = build(tiny_config(alpaca_file, method=method, train=train_over), tmp_path)
    before = {n: p.detach().clone().float() for n, p in model.named_parameters()}
    trainer.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing trains"
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach().float())
        if name in trainable:
            assert changed or "lora_A" in name, f"{name} should have changed"  # lora_A moves once B != 0
        else:
            assert not changed, f"frozen {name} changed"
    if kind == "full":
        assert len(trainable) == len(before)
    else:
        assert all("lora_" in n for n in trainable)
    if kind == "qlora":
        import bitsandbytes as bnb

        layer = bnb.nn.Linear8bitLt if extra.get("quant_bits") == 8 else bnb.nn.Linear4bit
        assert any(isinstance(m, layer) for m in model.modules())


@pytest.mark.integration
def test_lora_options_rslora_dora_and_targets(alpaca_file, tmp_path):
    trainer, model = build(tiny_config(alpaca_file, method={"kind": "lora", "use_dora": True, "use_rslora": True,
                                                            "target_modules": ["q_proj", "v_proj"], "lora_r": 4}),
                           tmp_path)
    cfg = model.peft_config["default"]
    assert cfg.use_dora and cfg.use_rslora and set(cfg.target_modules) == {"q_proj", "v_proj"}
    assert any("lora_magnitude_vector" in n for n, _ in model.named_parameters())
    trainer.train()
    assert trainer.state.global_step == 3 and all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.integration
def test_run_writes_the_run_directory(alpaca_file, tmp_path):
    events = []
    result = train.run(StudioConfig.from_dict(tiny_config(alpaca_file)), tmp_path / "r", events.append)
    assert result.state == "completed" and result.step == 3
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "completed" and status["error"] is None and status["step"] == 3
    lines = runs.read_metrics(tmp_path / "r")
    train_lines = [m for m in lines if "loss" in m]
    assert [m["step"] for m in train_lines] == [1, 2, 3]
    for key in ("epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s", "memory_mb", "elapsed_s", "eta_s"):
        assert key in train_lines[-1], key
    assert train_lines[-1]["tokens_per_s"] > 0 and train_lines[-1]["memory_mb"] > 0
    assert any("eval_loss" in m for m in lines)
    import dataclasses

    from studio.engine.events import Record

    assert set().union(*lines) <= set(Record.__annotations__)  # the records are what the types say they are
    assert set(status) <= {f.name for f in dataclasses.fields(runs.Status)}
    assert (tmp_path / "r" / "adapter" / "adapter_model.safetensors").is_file()
    assert StudioConfig.load(tmp_path / "r" / "config.yaml") == StudioConfig.from_dict(tiny_config(alpaca_file))
    assert [e.state for e in events if isinstance(e, StateChanged)] == ["running", "completed"]
    info = next(e for e in events if isinstance(e, TrainingInfo))
    assert info.train_examples + info.val_examples == 24 and info.trainable_params < info.total_params
    assert Split.load(tmp_path / "r").val and Split.load(tmp_path / "r").data_sha256


@pytest.mark.slow
def test_loss_falls_on_a_memorizable_set(tmp_path):
    cfg = tiny_config(SAMPLES / "instructions.json", data={"limit": 32, "val_size": 0},
                      method={"kind": "full"},
                      train={"max_steps": 40, "batch_size": 8, "learning_rate": 3e-3, "logging_steps": 5})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path / "r")
    losses = [m["loss"] for m in runs.read_metrics(tmp_path / "r") if "loss" in m]
    assert result.state == "completed"
    assert losses[-1] < 0.4 * losses[0], losses


@pytest.mark.integration
def test_stop_takes_effect_within_one_step_and_leaves_a_checkpoint(alpaca_file, tmp_path):
    steps = []

    def on_event(e):
        if isinstance(e, Metrics) and "loss" in e.record:
            steps.append(e.record["step"])

    result = train.run(StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 50})), tmp_path / "r",
                       on_event, should_stop=lambda: len(steps) >= 2)
    # Asked after step 2 was logged; step 3 was under way and is the last one.
    assert result.state == "stopped" and result.step == 3
    assert runs.last_complete_checkpoint(tmp_path / "r").name == "checkpoint-3"
    assert runs.read_status(tmp_path / "r")["state"] == "stopped"


@pytest.mark.integration
def test_nan_loss_ends_as_diverged(alpaca_file, tmp_path, monkeypatch):
    from studio.engine.train.trainer import StudioTrainer

    real = StudioTrainer.compute_loss
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        loss = real(self, *args, **kwargs)
        calls["n"] += 1
        return loss * float("nan") if calls["n"] >= 2 else loss

    monkeypatch.setattr(StudioTrainer, "compute_loss", poisoned)
    result = train.run(StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 20})), tmp_path / "r")
    assert result.state == "diverged" and result.step == 2
    assert "NaN" in result.error
    last = runs.read_metrics(tmp_path / "r")[-1]
    assert last["diverged"] is True and last["loss"] is None


@pytest.mark.integration
def test_resume_continues_from_the_last_complete_checkpoint(alpaca_file, tmp_path):
    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 6, "save_steps": 2,
                                                                  "save_total_limit": 0}))
    run_dir = tmp_path / "r"
    seen = []
    first = train.run(cfg, run_dir, lambda e: seen.append(e.record["step"]) if isinstance(e, Metrics) else None,
                      should_stop=lambda: 3 in seen)
    assert first.state == "stopped" and first.step == 4
    # A checkpoint killed mid-write: newer, but without its COMPLETE marker and with a broken file.
    broken = run_dir / "checkpoints" / "checkpoint-5"
    shutil.copytree(run_dir / "checkpoints" / "checkpoint-4", broken)
    (broken / runs.COMPLETE).unlink()
    (broken / "trainer_state.json").write_text("{truncated")
    assert runs.last_complete_checkpoint(run_dir).name == "checkpoint-4"
    second = train.run(cfg, run_dir, resume=True)
    assert second.state == "completed" and second.step == 6
    steps = [m["step"] for m in runs.read_metrics(run_dir) if "loss" in m]
    assert steps == [1, 2, 3, 4, 5, 6]


@pytest.mark.integration
def test_out_of_memory_fails_with_a_hint_and_the_next_run_works(alpaca_file, tmp_path, monkeypatch):
    from studio.engine.train.trainer import StudioTrainer

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with monkeypatch.context() as m:
        m.setattr(StudioTrainer, "training_step", oom)
        result = train.run(StudioConfig.from_dict(tiny_config(alpaca_file)), tmp_path / "a")
    assert result.state == "failed" and "out of memory" in result.error and "batch_size 2" in result.error
    assert runs.read_status(tmp_path / "a")["state"] == "failed"
    assert train.run(StudioConfig.from_dict(tiny_config(alpaca_file)), tmp_path / "b").state == "completed"


def test_bad_data_fails_before_any_model_loads(tmp_path, monkeypatch):
    from studio.engine.errors import DataError

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    from studio.engine.train import prepare

    for module, name in ((prepare, "resolve_model"), (prepare, "load_tokenizer"), (train, "load_model")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("a model was touched"))  # where they are used
    with pytest.raises(DataError, match="bad.jsonl: line 1"):
        train.run(StudioConfig.from_dict(tiny_config(bad)), tmp_path / "r")
    assert not (tmp_path / "r").exists()  # no run directory for input that never passed the check


@pytest.mark.integration
def test_full_disk_while_saving_fails_clearly_and_keeps_the_last_good_checkpoint(alpaca_file, tmp_path,
                                                                                  monkeypatch):
    import errno

    from studio.engine.train.trainer import StudioTrainer

    real = StudioTrainer._save_checkpoint
    saves = {"n": 0}

    def flaky(self, model, trial):
        saves["n"] += 1
        if saves["n"] == 2:  # the second checkpoint: half written, then the disk is full
            (tmp_path / "r" / "checkpoints" / f"checkpoint-{self.state.global_step}").mkdir(parents=True)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, model, trial)

    monkeypatch.setattr(StudioTrainer, "_save_checkpoint", flaky)
    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 6, "save_steps": 2,
                                                                  "save_total_limit": 0}))
    result = train.run(cfg, tmp_path / "r")
    assert result.state == "failed" and "disk full" in result.error
    assert runs.last_complete_checkpoint(tmp_path / "r").name == "checkpoint-2"
    assert runs.read_status(tmp_path / "r")["model_source"] == "studio-tiny"


def test_public_deployment_refuses_remote_code_unless_the_operator_allows(monkeypatch):
    from studio.config import ModelConfig
    from studio.engine import models
    from studio.engine.errors import ModelError

    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    with pytest.raises(ModelError, match="switched off on this public deployment"):
        models.resolve_model(ModelConfig(trust_remote_code=True))
    monkeypatch.setenv("STUDIO_ALLOW_TRUST_REMOTE_CODE", "1")
    assert models.resolve_model(ModelConfig(trust_remote_code=True)).source == "studio-tiny"
