"""The instruction objective trains on response tokens only, on templates with and without markers."""

import pytest
import torch
from transformers import AutoTokenizer

from studio.config import ModelConfig
from studio.engine.data.encode import IGNORE, encode, encode_example
from studio.engine.models import load_tokenizer, resolve_model

CONVO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 2 and 3."},
         {"role": "assistant", "content": "2 + 3 = 5."}, {"role": "user", "content": "And 4 and 4?"},
         {"role": "assistant", "content": "4 + 4 = 8."}]
# A Zephyr-style template: no {% generation %} markers, as most hub templates.
NO_MARKERS = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture
def tok(tiny_path):
    return AutoTokenizer.from_pretrained(tiny_path)


def trained_text(tok, ids, labels) -> str:
    return tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE])


@pytest.mark.parametrize("template", [None, NO_MARKERS], ids=["chatml-with-markers", "zephyr-no-markers"])
def test_instruction_masks_exactly_the_prompt(tok, template):
    if template:
        tok.chat_template = template
        assert "{% generation %}" not in tok.chat_template
    ids, labels = encode_example({"messages": CONVO}, tok, "instruction")
    assert len(ids) == len(labels)
    trained = [i for i, (a, b) in enumerate(zip(ids, labels)) if b != IGNORE]
    assert all(labels[i] == ids[i] for i in trained)
    end = "<|im_end|>\n" if template is None else "<|endoftext|>\n"
    assert trained_text(tok, ids, labels) == f"2 + 3 = 5.{end}4 + 4 = 8.{end}"
    # Every masked token belongs to the prompt: re-rendering the prompt prefix gives exactly them.
    prefix = tok.apply_chat_template(CONVO[:2], tokenize=False, add_generation_prompt=True)
    n_prefix = len(tok(prefix, add_special_tokens=False)["input_ids"])
    assert all(lab == IGNORE for lab in labels[:n_prefix]) and labels[n_prefix] != IGNORE


def test_causal_lm_trains_every_token(tok):
    ids, labels = encode_example({"messages": CONVO}, tok, "causal_lm")
    assert labels == ids
    ids, labels = encode_example({"text": "hello world"}, tok, "causal_lm")
    assert labels == ids and ids[-1] == tok.eos_token_id


def test_truncation_counts_and_drops_examples_without_targets(tok):
    long = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
    fits = len(encode([{"messages": CONVO}], tok, "instruction", max_length=10_000).rows[0]["input_ids"])
    out = encode([long, {"messages": CONVO}], tok, "instruction", max_length=fits)
    assert out.truncated == 1 and out.no_target == 1 and len(out.rows) == 1
    assert out.lengths[0] > fits and out.tokens_used == fits


def test_no_pad_token_pads_with_eos_and_still_trains_eos(tiny_path, tmp_path):
    from studio.engine.data.encode import collator

    base = AutoTokenizer.from_pretrained(tiny_path)
    base.pad_token = None
    base.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text((tiny_path / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes((tiny_path / "model.safetensors").read_bytes())
    cfg = ModelConfig(name=str(tmp_path))
    resolved = resolve_model(cfg)
    tok = load_tokenizer(resolved, cfg)
    assert tok.pad_token_id == tok.eos_token_id and any("pad" in n for n in resolved.notices)
    rows = encode([{"text": "a b c d e f"}, {"text": "a"}], tok, "causal_lm", 64).rows
    batch = collator(tok)(rows)
    short = batch["labels"][1]
    eos_at = len(rows[1]["input_ids"]) - 1
    assert short[eos_at] == tok.eos_token_id  # the real EOS is a target
    assert torch.all(short[eos_at + 1:] == IGNORE)  # the padding EOS tokens are not
