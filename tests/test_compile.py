"""train.torch_compile: the repeated decoder layer compiled once (regional), auto by the run's length against the
compile's cost, and a compile that fails falls back to eager in one line while the run goes on."""

import pytest
from conftest import tiny_config

from studio.config import StudioConfig
from studio.engine import registry, runs
from studio.engine.events import Notice
from studio.engine.train import compiled
from studio.engine.train import loop as train


def test_auto_compiles_a_long_run_only_and_says_why():
    lora, full = registry.get("lora"), registry.get("full")
    decide = compiled.decide
    short = decide("auto", lora, False, False, steps=20, step_seconds=0.2, compile_seconds=10)
    assert not short.compile and "save about 0 s against a 10 s compile" in short.why
    long = decide("auto", lora, False, False, steps=5000, step_seconds=2.0, compile_seconds=10)
    assert long.compile and "against a 10 s compile" in long.why
    first = decide("auto", lora, False, False, steps=5000, step_seconds=2.0, compile_seconds=None)  # never compiled
    assert f"{compiled.FIRST_COMPILE_S:.0f} s compile" in first.why
    assert not decide("auto", full, False, False, 5000, 2.0, 10).compile  # full: its own weights, not measured
    assert not decide("auto", lora, True, False, 5000, 2.0, 10).compile  # seq2seq / masked LM
    assert not decide("auto", lora, False, True, 5000, 2.0, 10).compile  # gradient checkpointing
    assert not decide("auto", lora, False, False, 5000, None, 10).compile  # speed unknown
    assert decide("on", full, True, True, 1, None, None).compile and not decide("off", lora, False, False,
                                                                                  10**6, 9.0, 1).compile


def test_the_repeated_layers_are_the_decoder_layers(tiny_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    layers = compiled.repeated_layers(model)
    assert layers == list(model.model.layers) and len(layers) == model.config.num_hidden_layers


def run(alpaca_file, tmp_path, name, **train_over):
    events = []
    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 4, "precision": "fp32", **train_over}))
    result = train.run(cfg, tmp_path / name, events.append)
    return result, runs.read_status(tmp_path / name), [e.message for e in events if isinstance(e, Notice)]


@pytest.mark.integration
def test_a_failing_compile_falls_back_in_one_line_and_the_run_completes(alpaca_file, tmp_path, monkeypatch):
    def broken(graph, example_inputs):
        raise RuntimeError("the backend exploded")

    monkeypatch.setattr(compiled, "BACKEND", broken)
    result, status, said = run(alpaca_file, tmp_path, "broken", torch_compile="on")
    eager, _, _ = run(alpaca_file, tmp_path, "eager", torch_compile="off")
    assert result.state == "completed", result.error
    failed = [m for m in said if m.startswith("torch.compile failed")]
    assert len(failed) == 1 and "the backend exploded" in failed[0] and "training on without it" in failed[0]
    assert status["compiled"] == failed[0]
    assert result.final_loss == pytest.approx(eager.final_loss, rel=0.02)  # the eager layers trained it (two runs
    # of the same settings differ by up to about 1 % here: training on a CPU is not bit-reproducible run to run)


@pytest.mark.integration
def test_compiled_layers_train_to_the_eager_loss_and_keep_their_compile_time(alpaca_file, tmp_path):
    from studio.engine import calibration

    result, status, said = run(alpaca_file, tmp_path, "compiled", torch_compile="on")
    eager, _, _ = run(alpaca_file, tmp_path, "eager", torch_compile="off")
    assert result.state == "completed", result.error
    assert status["compiled"].startswith("4 layers compiled with torch.compile in "), said
    assert result.final_loss == pytest.approx(eager.final_loss, rel=0.02)
    assert any(key.startswith(calibration.machine()) for key in calibration.read()["compile_s"])
