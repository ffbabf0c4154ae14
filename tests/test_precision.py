"""train.precision auto on a CPU: bf16 autocast where the CPU has bf16 in hardware and it measured faster for the
model's shape (kept once per machine), fp32 otherwise; bf16 reaches fp32's loss; the run says what it chose."""


import pytest
from conftest import tiny_config

from studio.config import StudioConfig
from studio.engine import calibration, precision, registry, runs
from studio.engine.events import TrainingInfo
from studio.engine.train import loop as train


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """A CPU with bf16 hardware whose one-layer timing is given (and counted), in a home of its own."""
    calls = []

    def timing(arch, tokens, steps=3):
        calls.append(tokens)
        return {"fp32": 0.3 * measured.ratio, "bf16": 0.3}

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "AVX512-BF16")
    monkeypatch.setattr(precision, "_time_layer", timing)
    measured.ratio, measured.calls = 1.5, calls
    return measured


def test_auto_on_a_cpu_follows_the_measured_gain(measured, tiny_path):
    lora = registry.get("lora")
    fast = precision.choose("auto", tiny_path, lora, tokens=2048)
    assert fast.name == "bf16" and "1.50x" in fast.why and "AVX512-BF16" in fast.why
    measured.ratio = 1.02  # another shape that gained nothing
    slow = precision.choose("auto", tiny_path, lora, tokens=64)
    assert slow.name == "fp32" and "1.02x" in slow.why
    assert measured.calls == [precision.MAX_TOKENS, 64]  # the run's tokens, capped
    assert precision.choose("auto", tiny_path, lora, tokens=4096).name == "bf16"  # kept: measured once a shape
    assert measured.calls == [precision.MAX_TOKENS, 64]
    precision.choose("auto", tiny_path, lora, tokens=200)
    precision.choose("auto", tiny_path, lora, tokens=300)  # the same power of two: measured once
    assert measured.calls == [precision.MAX_TOKENS, 64, 256]
    kept = calibration.read()["layer_step"]
    assert sorted(round(v["fp32"] / v["bf16"], 2) for v in kept.values()) == [1.02, 1.02, 1.5]
    assert all(calibration.machine() in key for key in kept)  # another machine measures again


def test_auto_stays_fp32_without_hardware_for_other_methods_and_when_unmeasurable(measured, tiny_path, monkeypatch,
                                                                                   tmp_path):
    assert precision.choose("auto", tiny_path, registry.get("full"), 512).name == "fp32"  # full: fp32 weights
    assert precision.choose("auto", tmp_path / "nowhere", registry.get("lora"), 512).name == "fp32"
    assert precision.choose("fp32", tiny_path, registry.get("lora"), 512).why == "train.precision says so"
    assert precision.choose("bf16", tiny_path, registry.get("full"), 512).name == "bf16"  # asked for: given
    monkeypatch.setattr(precision, "cpu_bf16", lambda: None)
    plain = precision.choose("auto", tiny_path, registry.get("lora"), 512)
    assert plain.name == "fp32" and "no bf16 in hardware" in plain.why
    assert measured.calls == []  # nothing was timed where nothing could gain


def test_the_real_timing_runs_one_layer_of_the_models_shape(tiny_path, monkeypatch, tmp_path):
    from transformers import AutoConfig

    seconds = precision._time_layer(AutoConfig.from_pretrained(tiny_path), tokens=32, steps=1)
    assert set(seconds) == {"fp32", "bf16"} and all(0 < s < 30 for s in seconds.values())


def run(alpaca_file, tmp_path, name, **train_over):
    events = []
    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 40, "learning_rate": 5e-4,
                                                                 "batch_size": 8, **train_over},
                                             data={"max_length": 128, "val_size": 0}))
    result = train.run(cfg, tmp_path / name, events.append)
    assert result.state == "completed", result.error
    return result, runs.read_status(tmp_path / name), next(e for e in events if isinstance(e, TrainingInfo))


@pytest.mark.integration
def test_bf16_reaches_fp32s_loss_on_studio_tiny_and_the_run_says_which_ran(alpaca_file, tmp_path):
    fp32, fp32_status, fp32_info = run(alpaca_file, tmp_path, "fp32", precision="fp32")
    bf16, bf16_status, bf16_info = run(alpaca_file, tmp_path, "bf16", precision="bf16")
    first = runs.read_metrics(tmp_path / "fp32")[0]["loss"]
    assert fp32.final_loss < 0.9 * first  # it learned: the comparison is between two curves that moved
    assert abs(bf16.final_loss - fp32.final_loss) / fp32.final_loss < 0.02  # within 2 %
    assert (fp32_status["precision"], bf16_status["precision"]) == ("fp32", "bf16")
    assert bf16_status["precision_why"] == "train.precision says so" and "precision bf16" in bf16_info.line()
    assert [f["kind"] for f in fp32_status.get("findings", [])] == [f["kind"] for f in bf16_status.get("findings", [])]


@pytest.mark.integration
def test_auto_records_the_rule_it_followed(alpaca_file, tmp_path):
    _, status, info = run(alpaca_file, tmp_path, "auto", max_steps=2)
    assert status["precision"] in ("fp32", "bf16") and status["precision_why"].startswith("auto: ")
    assert info.precision_why == status["precision_why"]
