"""The method registry: outside studio/engine/methods/ nothing branches on a method's kind, and a method added
from one file (tests/toy_method.py) trains, has a memory estimate, exports and appears in the Model tab."""

import ast
import json
import zipfile

import pytest
from conftest import ROOT, tiny_config

from studio.config import METHODS, ConfigError, StudioConfig
from studio.engine import methods

STUDIO = ROOT / "studio"
BUILTIN = {"full", "lora", "qlora", "dpo", "kto", "adalora", "ia3", "prefix", "ptuning", "prompt", "reward", "rl"}


def _names(node) -> set[str]:
    """The method names a literal holds: a string, or the strings of a tuple, list or set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & BUILTIN
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_names(e) for e in node.elts)) if node.elts else set()
    return set()


def _is_kind(node) -> bool:
    """``method.kind`` / ``cfg.method.kind``."""
    if isinstance(node, ast.Attribute) and node.attr == "kind":
        inner = node.value
        return isinstance(inner, ast.Name) and inner.id == "method" or \
            isinstance(inner, ast.Attribute) and inner.attr == "method"
    return False


def _about_methods(node) -> bool:
    """A name or attribute chain that speaks of a method or a kind (``kind``, ``r.method``, ``cfg.method.kind``);
    "kto" and "prompt" are also a data format and a column, compared as such elsewhere."""
    while isinstance(node, ast.Attribute):
        if node.attr in ("kind", "method"):
            return True
        node = node.value
    return isinstance(node, ast.Name) and ("kind" in node.id or "method" in node.id)


def branches(tree: ast.Module) -> list[int]:
    """Lines that decide by a method's name: comparisons with method names or with ``method.kind``, tables
    keyed by method names, and ``*_METHODS`` collections."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_kind(s) for s in sides) or any(_names(s) for s in sides) and any(map(_about_methods, sides)):
                found.append(node.lineno)
        elif isinstance(node, ast.Dict) and len({k.value for k in node.keys if isinstance(k, ast.Constant)}
                                                & BUILTIN) >= 2:
            found.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id.endswith("_METHODS"):
            found.append(node.lineno)
    return sorted(found)


def test_the_scan_finds_what_it_looks_for():
    code = ('if cfg.method.kind == "full": pass\nif kind in ("prefix", "prompt"): pass\n'
            'x = {"dpo": 1, "kto": 2}[kind]\nif k in PROMPT_METHODS: pass\nif fmt == "kto": pass\n'
            'if r.method == "reward": pass\n')
    assert branches(ast.parse(code)) == [1, 2, 3, 4, 6]


def test_no_module_outside_the_registry_branches_on_a_method():
    found = [f"{path.relative_to(ROOT)}:{line}" for path in STUDIO.rglob("*.py")
             if STUDIO / "engine" / "methods" not in path.parents
             for line in branches(ast.parse(path.read_text()))]
    assert not found, found


def test_every_builtin_method_is_registered_in_order_with_its_facts():
    assert list(METHODS)[:12] == ["full", "lora", "qlora", "dpo", "kto", "adalora", "ia3", "prefix", "ptuning",
                                  "prompt", "reward", "rl"]
    assert [m for m in METHODS.values() if not m.adapter] == [METHODS["full"]]
    assert {m.name for m in METHODS.values() if not m.merges} == {"prefix", "ptuning", "prompt"}
    assert {m.name for m in METHODS.values() if m.score_head} == {"reward"}
    assert {m.name: m.data for m in METHODS.values() if m.own_data_order} == \
        {"dpo": "preference", "kto": "kto", "reward": "preference", "rl": "prompts"}
    for m in METHODS.values():
        assert (m.peft_config is None) == (not m.adapter), m.name
    with pytest.raises(ConfigError, match="method.kind must be one of full, lora"):
        StudioConfig.from_dict({"method": {"kind": "nope"}})


def test_each_method_declares_its_own_settings_typed_as_the_flat_schema_types_them():
    from studio.config import SECTIONS

    flat = SECTIONS["method"].__pydantic_fields__
    read = set()
    for m in METHODS.values():
        own = m.settings_class.model_fields
        assert own["kind"].annotation.__args__ == (m.name,), m.name  # the discriminator: Literal[its name]
        for name in m.settings:
            assert own[name].annotation == flat[name].annotation, f"{m.name}: {name}"
        read |= set(m.settings)
    assert read == set(flat) - {"kind", "objective"}  # every flat setting is some method's, none is no one's


def test_the_flat_section_maps_to_the_methods_own_settings_as_a_union_on_kind():
    from pydantic import ValidationError

    from studio.config import MethodConfig
    from studio.engine.methods.lora import AdaLoraSettings, QLoraSettings

    q = methods.settings(MethodConfig(kind="qlora", quant_bits=8, lora_r=4))
    assert isinstance(q, QLoraSettings) and (q.quant_bits, q.lora_r) == (8, 4)
    ada = methods.settings(MethodConfig(kind="adalora", adalora_init_r=10))
    assert isinstance(ada, AdaLoraSettings) and ada.adalora_init_r == 10
    with pytest.raises(AttributeError):
        ada.lora_r  # noqa: B018 - AdaLoRA's rank moves: its hooks cannot read a fixed one
    with pytest.raises(AttributeError):
        methods.settings(MethodConfig(kind="lora")).quant_bits  # noqa: B018 - not LoRA's to read
    from studio.engine import registry

    union = registry._union()
    with pytest.raises(ValidationError):
        union.validate_python({"kind": "prefix", "num_virtual_tokens": 8, "lora_r": 4})  # not prefix's field
    assert type(union.validate_python({"kind": "prompt", "num_virtual_tokens": 8})).__name__ == "PromptSettings"


@pytest.fixture(scope="module")
def toy():
    import toy_method

    yield toy_method.METHOD
    METHODS.pop(toy_method.NAME, None)


@pytest.mark.slow
def test_a_method_from_one_file_trains_estimates_exports_and_is_offered(toy, alpaca_file, tmp_path, tiny_path):
    from studio.engine.export.exporters import export_adapter, export_merged
    from studio.engine.train import loop
    from studio.engine.train.estimate import estimate

    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, method={"kind": toy.name, "lora_r": 4},
                                             train={"max_steps": 6, "batch_size": 8, "learning_rate": 5e-3}))
    assert methods.of(cfg) is toy
    result = loop.run(cfg, tmp_path / "r", lambda e: None)
    assert result.state == "completed", result.error
    losses = [json.loads(x)["loss"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
              if json.loads(x).get("loss") is not None]
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    adapter = json.loads((tmp_path / "r" / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and set(adapter["rank_pattern"].values()) == {8}  # its own rank rule, saved

    from safetensors.torch import load_file
    weights = load_file(tmp_path / "r" / "adapter" / "adapter_model.safetensors")
    ranks = {int(k.split("layers.")[1].split(".")[0]): v.shape[0] for k, v in weights.items() if "lora_A" in k}
    layers = max(ranks) + 1
    assert all(r == (8 if i >= layers // 2 else 4) for i, r in ranks.items()), ranks

    e = estimate(cfg)
    trained = sum(v.numel() for v in weights.values())
    assert e.trainable == trained  # the estimate builds the same adapter from the method's own config

    card = zipfile.ZipFile(export_adapter(tmp_path / "r", tmp_path / "a.zip")).read("README.md").decode()
    assert f"- {toy.name}" in card and "- lora" in card
    merged = export_merged(tmp_path / "r", tmp_path / "merged")
    assert (tmp_path / "merged" / "config.json").is_file(), merged


@pytest.mark.slow
def test_a_method_from_one_file_appears_in_the_model_tab(toy):
    from studio.ui.app import build_app
    from studio.ui.tabs.model import METHOD, Handlers

    demo = build_app()
    kind = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "method-kind")
    assert toy.name in [c[0] if isinstance(c, tuple) else c for c in kind.choices]
    assert toy.name in kind.info and toy.help in kind.info
    shown = Handlers.method_fields(None, toy.name)
    visible = {m for m, u in zip(METHOD, shown[:-1]) if u.get("visible")}
    assert visible == set(toy.settings)
