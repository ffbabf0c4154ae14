from pathlib import Path

import pytest
import yaml

from studio.config import ConfigError, StudioConfig, field_help

ROOT = Path(__file__).resolve().parents[1]


def test_yaml_round_trip(tmp_path):
    cfg = StudioConfig.from_dict({"data": {"path": "x.jsonl", "columns": {"instruction": "q"}},
                                  "method": {"kind": "qlora", "target_modules": ["q_proj", "v_proj"]},
                                  "train": {"learning_rate": "1e-4", "epochs": 3}, "run_name": "r1"})
    cfg.save(tmp_path / "c.yaml")
    again = StudioConfig.load(tmp_path / "c.yaml")
    assert again == cfg
    assert again.train.learning_rate == 1e-4 and isinstance(again.train.epochs, float)
    assert again.method.target_modules == ["q_proj", "v_proj"]


def test_set_overrides_parse_yaml_values():
    cfg = StudioConfig().with_overrides(["train.learning_rate=3e-5", "method.kind=full",
                                         "method.target_modules=[q_proj, k_proj]", "train.gradient_checkpointing=true"])
    assert cfg.train.learning_rate == 3e-5 and cfg.method.kind == "full"
    assert cfg.method.target_modules == ["q_proj", "k_proj"] and cfg.train.gradient_checkpointing is True


@pytest.mark.parametrize("raw, field", [
    ({"train": {"learning_rate": 0}}, "train.learning_rate"),
    ({"train": {"learning_rate": -1e-4}}, "train.learning_rate"),
    ({"train": {"learning_rate": float("nan")}}, "train.learning_rate"),
    ({"train": {"learning_rate": "fast"}}, "train.learning_rate"),
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"train": {"epochs": 0, "max_steps": 0}}, "train.epochs and train.max_steps are both 0"),
    ({"method": {"lora_r": 0}}, "method.lora_r"),
    ({"data": {"val_size": 1.0}}, "data.val_size"),
    ({"data": {"val_size": -0.1}}, "data.val_size"),
    ({"method": {"kind": "magic"}}, "method.kind"),
    ({"train": {"precision": "fp8"}}, "train.precision"),
    ({"train": {"scheduler": "wavy"}}, "train.scheduler"),
    ({"method": {"lora_dropout": 1.5}}, "method.lora_dropout"),
    ({"train": {"learning_rate": True}}, "train.learning_rate must be a number, got True"),
    ({"train": {"batch_size": 2.5}}, "train.batch_size must be an integer, got 2.5"),
    ({"eval": {"top_p": 1.5}}, "eval.top_p must be > 0 and <= 1, got 1.5"),
    ({"data": {"columns": ["q"]}}, "data.columns must be a mapping, got ['q']"),
    ({"train": {"report_to": ["tensorboard", "excel"]}}, "train.report_to must be a list of tensorboard"),
    ({"train": 3}, "config section 'train' must be a mapping, got 3"),
])
def test_validation_names_the_field(raw, field):
    with pytest.raises(ConfigError) as e:
        StudioConfig.from_dict(raw)
    assert field in str(e.value)


def test_what_a_person_writes_is_read_as_meant():
    """YAML reads 1e-4 as text, a form gives 3.0 for 3, a revision can look like a number: each gets its type."""
    cfg = StudioConfig.from_dict({"train": {"learning_rate": "1e-4", "batch_size": 3.0, "epochs": 2},
                                  "model": {"revision": 1234}, "eval": {"limit": "7"}, "method": None})
    assert (cfg.train.learning_rate, cfg.train.batch_size, cfg.train.epochs) == (1e-4, 3, 2.0)
    assert isinstance(cfg.train.batch_size, int) and isinstance(cfg.train.epochs, float)
    assert cfg.model.revision == "1234" and cfg.eval.limit == 7


def test_a_section_made_in_code_is_checked_the_same_way():
    import dataclasses

    from studio.config import EvalConfig, MethodConfig

    with pytest.raises(ConfigError, match=r"^eval.limit must be >= 1, got 0$"):
        EvalConfig(limit=0)
    with pytest.raises(ConfigError, match="needs method.reward_model"):  # a method's refusal, on a replace
        dataclasses.replace(StudioConfig(), method=MethodConfig(kind="rl"))


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'train.lr'; valid: .*learning_rate"):
        StudioConfig.from_dict({"train": {"lr": 1e-4}})
    with pytest.raises(ConfigError, match="unknown config section 'trian'"):
        StudioConfig().with_overrides(["trian.lr=1"])


def test_method_needing_a_missing_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ConfigError, match="needs the 'bitsandbytes' package"):
        StudioConfig.from_dict({"method": {"kind": "qlora"}})


def test_every_field_has_help():
    import dataclasses

    from studio.config import SECTIONS

    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert field_help(section, f.name).strip(), f"{section}.{f.name}"


@pytest.mark.parametrize("path", sorted((ROOT / "assets" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = StudioConfig.load(path)
    assert (ROOT / cfg.data.path).is_file()
    raw = yaml.safe_load(path.read_text())
    assert set(raw) <= {"data", "model", "method", "train", "eval", "run_name"}
    assert 0 < cfg.train.learning_rate < 1 and (cfg.train.max_steps or cfg.train.epochs) > 0
