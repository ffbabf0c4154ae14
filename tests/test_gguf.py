"""GGUF export for llama.cpp and Ollama, proven without llama.cpp: transformers loads the file (``gguf_file=``),
and on the run's held-out texts its perplexity and greedy next tokens match the merged model's; the Modelfile is
beside it; what the writer does not cover is one line and exit 2."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, SAMPLES, tiny_config

from studio.config import StudioConfig
from studio.engine.train import loop as train

pytestmark = pytest.mark.slow  # trains small runs and loads models


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    cfg = tiny_config(SAMPLES / "chat.jsonl", data={"val_size": 0.2},
                      train={"max_steps": 30, "batch_size": 8, "learning_rate": 2e-3})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path_factory.mktemp("gguf") / "lora")
    assert result.state == "completed", result.error
    return result.run_dir


def studio(*args, env=None):
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=600)


def held_out_texts(run) -> list[str]:
    import json

    from studio.engine import runs
    from studio.engine.data.encode import render
    from studio.engine.data.formats import load_examples
    from studio.engine.models import load_tokenizer, resolve_model

    cfg = StudioConfig.load(run / "config.yaml")
    split = json.loads((run / "split.json").read_text())
    examples = load_examples(cfg.data.path).examples
    tok = load_tokenizer(resolve_model(cfg.model), cfg.model)
    with runs.acting_for(run):
        return [render(tok, examples[i]["messages"]) for i in split["val"]]


@pytest.mark.parametrize("quant, ppl_within, agree_at_least", [("f16", 0.005, 0.99), ("q8_0", 0.02, 0.98)])
def test_the_gguf_loads_in_transformers_and_matches_the_merged_model(lora_run, tmp_path, quant, ppl_within,
                                                                     agree_at_least):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.engine.export import exporters as E

    out = tmp_path / f"tuned-{quant}.gguf"
    done = studio("export", str(lora_run), "--format", "gguf", "--quant", quant, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.is_file() and out.with_suffix(".Modelfile").is_file()
    modelfile = out.with_suffix(".Modelfile").read_text()
    assert f"FROM ./{out.name}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile and "TEMPLATE" in modelfile

    merged, tok = E.merged_model(*E._run(lora_run))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name, dtype=torch.float32).eval()
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=out.name)
    texts = held_out_texts(lora_run)
    assert len(texts) >= 10
    assert [loaded_tok(t)["input_ids"] for t in texts] == [tok(t)["input_ids"] for t in texts]
    assert loaded_tok.chat_template == tok.chat_template
    nll, agree, count = {"merged": 0.0, "gguf": 0.0}, 0, 0
    for text in texts:
        ids = tok(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = {"merged": merged.eval()(ids).logits[0, :-1], "gguf": loaded(ids).logits[0, :-1]}
        for side, lg in logits.items():
            nll[side] += float(torch.nn.functional.cross_entropy(lg, ids[0, 1:], reduction="sum"))
        agree += int((logits["merged"].argmax(-1) == logits["gguf"].argmax(-1)).sum())
        count += ids.shape[1] - 1
    ppl = {side: float(torch.exp(torch.tensor(v / count))) for side, v in nll.items()}
    assert abs(ppl["gguf"] - ppl["merged"]) / ppl["merged"] <= ppl_within, ppl
    assert agree / count >= agree_at_least, agree / count


def test_what_the_writer_does_not_cover_is_one_line_and_exit_2(lora_run, tmp_path):
    bare = {"PATH": os.path.dirname(sys.executable)}  # no llama-quantize on it
    done = studio("export", str(lora_run), "--format", "gguf", "--quant", "q4_k_m", "--out", str(tmp_path / "x.gguf"),
                  env=bare)
    assert done.returncode == 2 and "llama-quantize" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    s2s = train.run(StudioConfig.from_dict(tiny_config(SAMPLES / "qa.csv", model={"name": "studio-tiny-t5"},
                                                       method={"kind": "full"}, train={"max_steps": 1})),
                    tmp_path / "t5")
    assert s2s.state == "completed", s2s.error
    done = studio("export", str(s2s.run_dir), "--format", "gguf", "--out", str(tmp_path / "t5.gguf"))
    assert done.returncode == 2 and "Llama family" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_the_other_llama_family_members_round_trip(family, tiny_path, tmp_path):
    """Qwen2 (q/k/v biases, rows not reordered) and Mistral (llama.cpp's llama layout), small and seeded, with
    studio-tiny's byte-level tokenizer: the file transformers reads back gives the same logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, MistralConfig, Qwen2Config

    from studio.engine.export.gguf_export import write_gguf

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_path)
    shape = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False)
    config = Qwen2Config(**shape) if family == "qwen2" else MistralConfig(**shape, sliding_window=None)
    model = AutoModelForCausalLM.from_config(config).eval()
    # (named neutrally: transformers reads a file whose name says "mistral" as its own mistral type, which its
    # gguf-py version does not map; llama.cpp reads it as llama, as its converter writes it)
    assert write_gguf(model, tok, tmp_path / "m.gguf", "f16", "tiny") == ("qwen2" if family == "qwen2" else "llama")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.float32).eval()
    ids = tok(["The studio writes GGUF files for llama.cpp."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        diff = (model(ids).logits - loaded(ids).logits).abs().max().item()
    assert diff < 0.01, diff
