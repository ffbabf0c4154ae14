"""Model resolution: studio-tiny, local folders, and each refusal in one line."""

import json
import shutil

import pytest

from studio.config import ModelConfig
from studio.engine import models
from studio.engine.errors import ModelError
from studio.engine.tiny import DEFAULT_CHAT_TEMPLATE


def copy_model(src, dst, weights=True):
    dst.mkdir()
    for f in src.iterdir():
        if weights or f.suffix != ".safetensors":
            shutil.copy(f, dst / f.name)
    return dst


def test_studio_tiny_is_an_ordinary_hf_folder(tiny_path):
    from transformers import AutoModelForCausalLM

    cfg = json.loads((tiny_path / "config.json").read_text())
    assert cfg["model_type"] == "llama"
    assert all(cfg[k] % 64 == 0 for k in ("hidden_size", "intermediate_size", "vocab_size"))
    tok = models.load_tokenizer(models.resolve_model(ModelConfig()), ModelConfig())
    assert "{% generation %}" in tok.chat_template
    m1 = AutoModelForCausalLM.from_pretrained(tiny_path)
    assert sum(p.numel() for p in m1.parameters()) > 1_000_000


def test_studio_tiny_is_the_shipped_pretrained_weights_in_fp32(tmp_path, tiny_path):
    import torch
    from safetensors.torch import load_file

    from studio.engine.tiny import TOKENIZER_DIR, ensure_studio_tiny, save_random_llama

    shipped, home = load_file(TOKENIZER_DIR / "model.safetensors"), load_file(tiny_path / "model.safetensors")
    assert (TOKENIZER_DIR / "model.safetensors").stat().st_size < 10 * 2**20  # a Space needs no LFS
    assert all(v.dtype == torch.bfloat16 for v in shipped.values()) and shipped.keys() == home.keys()
    assert all(home[k].dtype == torch.float32 and torch.equal(home[k], shipped[k].float()) for k in shipped)
    assert ensure_studio_tiny(tmp_path) != tiny_path  # another home: written again from the same weights
    assert (tmp_path / "models/studio-tiny/model.safetensors").read_bytes() == (tiny_path / "model.safetensors"
                                                                                 ).read_bytes()
    again, twice = (save_random_llama(tmp_path / n, seed=3, num_hidden_layers=1) for n in ("r1", "r2"))
    assert (again / "model.safetensors").read_bytes() == (twice / "model.safetensors").read_bytes()


def test_local_folder_without_chat_template_gets_the_default(tiny_path, tmp_path):
    local = copy_model(tiny_path, tmp_path / "m")
    (local / "chat_template.jinja").unlink()
    cfg = ModelConfig(name=str(local))
    resolved = models.resolve_model(cfg)
    tok = models.load_tokenizer(resolved, cfg)
    assert tok.chat_template == DEFAULT_CHAT_TEMPLATE and any("chat template" in n for n in resolved.notices)


def test_pickle_only_weights_are_refused(tiny_path, tmp_path):
    local = copy_model(tiny_path, tmp_path / "m", weights=False)
    (local / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelError, match="only pickle .bin weights.*safetensors only"):
        models.resolve_model(ModelConfig(name=str(local)))


def test_remote_code_is_refused_unless_asked(tiny_path, tmp_path):
    local = copy_model(tiny_path, tmp_path / "m")
    cfg = json.loads((local / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.Evil"}
    (local / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="trust_remote_code"):
        models.resolve_model(ModelConfig(name=str(local)))
    assert models.resolve_model(ModelConfig(name=str(local), trust_remote_code=True)).source == "local"


def test_missing_local_folder(tmp_path):
    with pytest.raises(ModelError, match="no such local folder"):
        models.resolve_model(ModelConfig(name=str(tmp_path / "nope")))


def test_offline_and_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match=r"not in the local cache.*offline"):
        models.resolve_model(ModelConfig(name="someone/some-model-not-cached"))


def _raise(exc):
    def fake(*args, **kwargs):
        raise exc
    return fake


def test_gated_and_not_found_are_distinct(monkeypatch):
    import httpx
    import huggingface_hub
    from huggingface_hub import errors as hf

    response = httpx.Response(401, request=httpx.Request("GET", "https://hub.invalid/x"))
    messages = {}
    for name, exc in (("gated", hf.GatedRepoError("gated", response=response)),
                      ("missing", hf.RepositoryNotFoundError("missing", response=response))):
        monkeypatch.setattr(huggingface_hub, "snapshot_download", _raise(exc))
        with pytest.raises(ModelError) as e:
            models.resolve_model(ModelConfig(name="org/model"))
        messages[name] = str(e.value)
    assert "gated" in messages["gated"] and "HF_TOKEN" in messages["gated"]
    assert "not found" in messages["missing"] and "gated" not in messages["missing"]
