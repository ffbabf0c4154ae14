"""Defaults that fit the model: one rule for the CLI and the UI."""

import json

from conftest import SAMPLES

from studio.engine.train.defaults import SMALL, defaults_for, with_defaults


def test_a_config_with_only_the_data_gets_the_measured_small_model_settings():
    """The settings bench/first_run.py measured on studio-tiny (LoRA r 16 on every linear layer, 2e-3, 5 epochs,
    batch 8), written out here rather than read back from the table that sets them."""
    cfg, found = with_defaults({"data": {"path": str(SAMPLES / "chat.jsonl")}})
    assert found.small and "small base model" in found.reason and "2e-3" in found.reason
    assert (cfg.method.kind, cfg.method.lora_r, cfg.method.target_modules) == ("lora", 16, "all-linear")
    assert (cfg.train.learning_rate, cfg.train.epochs, cfg.train.batch_size) == (2e-3, 5.0, 8)
    assert cfg.data.max_length == 256


def test_the_files_own_settings_win():
    cfg, _ = with_defaults({"data": {"path": "x.jsonl"}, "train": {"learning_rate": 1e-4}})
    assert cfg.train.learning_rate == 1e-4 and cfg.train.epochs == SMALL["train"]["epochs"]


def test_a_hub_sized_model_keeps_the_practitioner_defaults(tmp_path):
    from studio.engine.tiny import tiny_config

    big = tmp_path / "big"
    big.mkdir()
    config = tiny_config(4096, hidden_size=1024, intermediate_size=2816, num_hidden_layers=12,
                         num_attention_heads=16, num_key_value_heads=4)
    (big / "config.json").write_text(json.dumps(config.to_dict()))  # the architecture alone: no weights
    found = defaults_for(str(big))
    assert not found.small and "hub-sized" in found.reason and "M parameters" in found.reason
    cfg, _ = with_defaults({"data": {"path": "x.jsonl"}, "model": {"name": str(big)}})
    assert cfg.train.learning_rate == 2e-4 and cfg.method.kind == "lora" and cfg.train.epochs == 1.0
