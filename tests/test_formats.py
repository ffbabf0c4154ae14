"""Real datasets as they come: KTO labels, tool calls, typed parts and loss weights, implicit-prompt
preferences, long documents, media columns; which tokens are trained in each; each shape end to end, on our own
files (tests/data/shapes) and, where they lie beside the clone, on LLaMA-Factory's demo files too."""

import json

import pytest
from conftest import SHAPES, peer, tiny_config, write_jsonl

from studio.config import ModelConfig, StudioConfig
from studio.engine.data.check import inspect_data
from studio.engine.data.encode import IGNORE, encode_example
from studio.engine.data.formats import load_examples
from studio.engine.errors import DataError
from studio.engine.models import load_tokenizer, resolve_model
from studio.engine.train.prepare import prepare

REASONING_TEMPLATE = (
    "{%- for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{%- if m.get('reasoning_content') %}<think>{{ m['reasoning_content'] }}</think>{% endif %}"
    "{{ m['content'] }}<|im_end|>\n{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}")


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(resolve_model(ModelConfig()), ModelConfig())


def trained_text(example, tok) -> str:
    ids, labels = encode_example(example, tok, "instruction")
    return tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE])


def masked_text(example, tok) -> str:
    ids, labels = encode_example(example, tok, "instruction")
    return tok.decode([i for i, lab in zip(ids, labels) if lab == IGNORE])


def test_kto_labels_are_their_own_format_and_undesirable_answers_are_never_sft_targets(tmp_path):
    for path, records in ((SHAPES / "kto.json", 36), (peer("kto_en_demo.json"), 300)):
        if path is None:
            continue
        loaded = load_examples(path)
        assert loaded.format == "kto" and len(loaded.examples) == records
        assert sum(ex["label"] for ex in loaded.examples) == records // 2
        p = prepare(StudioConfig.from_dict(tiny_config(path, data={"max_length": 512})))
        assert p.stats["train_examples"] + p.stats["val_examples"] <= records // 2
        assert any(f"left out {records // 2} undesirable" in n for n in p.notices)
    rows = [{"messages": [{"role": "user", "content": f"问题 {i}"},
                          {"role": "assistant", "content": f"{'GOOD' if i % 2 else 'BAD'} answer {i}"}],
             "label": bool(i % 2)} for i in range(20)]
    own = prepare(StudioConfig.from_dict(tiny_config(write_jsonl(tmp_path / "k.jsonl", rows))))
    trained = [own.tokenizer.decode([t for t in r["labels"] if t != IGNORE]) for r in own.train_rows + own.val_rows]
    assert len(trained) == 10 and all("GOOD" in t and "BAD" not in t for t in trained)
    kto = prepare(StudioConfig.from_dict(tiny_config(SHAPES / "kto.json", method={"kind": "kto"},
                                                     data={"max_length": 512})))
    labels = [r["label"] for r in kto.train_rows]
    assert True in labels and False in labels and kto.stats["objective"] == "kto"


def test_sharegpt_tool_calls_schema_in_the_prompt_calls_trained_results_masked(tok):
    for path in (SHAPES / "sharegpt_tools.json", peer("glaive_toolcall_en_demo.json")):
        if path is None:
            continue
        loaded = load_examples(path)
        assert loaded.format == "sharegpt" and not loaded.report.problems
        ex = next(e for e in loaded.examples if e.get("tools") and any(m.get("tool_calls") for m in e["messages"]))
        name = ex["tools"][0]["function"]["name"]
        call = next(m for m in ex["messages"] if m.get("tool_calls"))["tool_calls"][0]["function"]["name"]
        result = next(m for m in ex["messages"] if m["role"] == "tool")["content"]
        assert name in masked_text(ex, tok) and "You can call these functions" in masked_text(ex, tok)
        assert f'"name": "{call}"' in trained_text(ex, tok)
        assert result[:40] in masked_text(ex, tok) and result[:40] not in trained_text(ex, tok)
    system = next(e for e in load_examples(SHAPES / "sharegpt_tools.json").examples
                  if e["messages"][0]["role"] == "system")
    assert "weather assistant" in masked_text(system, tok)  # the system column, in the prompt, never trained


def test_openai_tool_calls_and_tool_role_map_the_same_way(tmp_path, tok):
    call = {"type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"北京\"}"}}
    row = {"messages": [{"role": "user", "content": "天气如何？北京"},
                        {"role": "assistant", "content": "", "tool_calls": [call]},
                        {"role": "tool", "content": "{\"sky\": \"sunny\", \"c\": 25}"},
                        {"role": "assistant", "content": "北京今天晴，25度。"}],
           "tools": json.dumps([{"name": "weather", "parameters": {"type": "object"}}])}
    ex = load_examples(write_jsonl(tmp_path / "t.jsonl", [row])).examples[0]
    trained = trained_text(ex, tok)
    assert '"city": "北京"' in trained and "北京今天晴" in trained and "sunny" not in trained
    assert '"name": "weather"' in masked_text(ex, tok)


def test_v1_typed_parts_and_loss_weights(tok):
    for path, records in ((SHAPES / "typed_parts.jsonl", 24), (peer("v1_sft_demo.jsonl"), 500)):
        if path is None:
            continue
        loaded = load_examples(path)
        assert loaded.format == "messages" and len(loaded.examples) == records and not loaded.report.problems
        ex = loaded.examples[0]
        assert ex["messages"][0]["content"] == "hi" and ex["messages"][0]["loss_weight"] == 0.0
    thinking = next(e for e in load_examples(SHAPES / "typed_parts.jsonl").examples
                    if e["messages"][-1].get("reasoning_content"))
    assert thinking["messages"][-1]["reasoning_content"].startswith("The word ")
    assert "<think>" in trained_text(thinking, tok) and "What is a" in masked_text(thinking, tok)
    weighted = {"messages": [{"role": "user", "content": "first", "loss_weight": 1.0},
                             {"role": "assistant", "content": "kept out", "loss_weight": 0.0},
                             {"role": "user", "content": "second"},
                             {"role": "assistant", "content": "trained answer"}]}
    trained = trained_text(weighted, tok)
    assert "first" in trained and "trained answer" in trained and "kept out" not in trained


def test_reasoning_goes_where_the_template_puts_it_else_inline_unless_a_chosen_template_forbids_it(tmp_path, tok):
    from studio.engine.data.encode import encode

    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "2+2?"}]},
                        {"role": "assistant", "content": [{"type": "reasoning", "value": "two and two"},
                                                          {"type": "text", "value": "4"}]}]}
    ex = load_examples(write_jsonl(tmp_path / "r.jsonl", [row])).examples[0]
    assert ex["messages"][1] == {"role": "assistant", "content": "4", "reasoning_content": "two and two"}
    # the model's own template has no slot: the reasoning is trained inline, as open reasoning models write it
    assert "<think>\ntwo and two\n</think>\n\n4" in trained_text(ex, tok)
    assert any("<think>" in n for n in encode([ex], tok, "instruction", 64).notices)
    tok.chat_template, saved = REASONING_TEMPLATE, tok.chat_template
    try:
        assert "<think>two and two</think>4" in trained_text(ex, tok)  # a template with a slot puts it there
        tok.chat_template, tok.studio_template_chosen = saved, True  # a template the user chose, with no slot
        with pytest.raises(DataError, match="reasoning parts.*you chose.*no"):
            encode_example(ex, tok, "instruction")
    finally:
        tok.chat_template, tok.studio_template_chosen = saved, False


def test_implicit_prompt_preferences_split_at_the_shared_prefix(tmp_path):
    convo = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "你好吗？"}]
    row = {"chosen_messages": convo + [{"role": "assistant", "content": "很好，谢谢！"}],
           "rejected_messages": convo + [{"role": "assistant", "content": "走开。"}]}
    whole = {"chosen": row["chosen_messages"], "rejected": row["rejected_messages"]}
    for rec in (row, whole):
        loaded = load_examples(write_jsonl(tmp_path / "p.jsonl", [rec]))
        ex = loaded.examples[0]
        assert loaded.format == "preference" and ex["prompt"] == convo
        assert ex["chosen"] == [{"role": "assistant", "content": "很好，谢谢！"}]
        assert ex["rejected"] == [{"role": "assistant", "content": "走开。"}]


def test_long_documents_are_packed_not_truncated(tmp_path):
    words = "the river runs past the mill and the mill grinds the grain".split()
    docs = [{"text": " ".join(words[(i + j) % len(words)] for j in range(3000))} for i in range(6)]
    path = write_jsonl(tmp_path / "long.jsonl", docs)
    p = prepare(StudioConfig.from_dict(tiny_config(path, data={"max_length": 512, "val_size": 0})))
    trained = sum(len(r["input_ids"]) for r in p.train_rows)
    report = inspect_data(path, max_length=512).report
    assert trained / report["tokens_total"] >= 0.95 and report["tokens_trained"] == trained
    assert all(len(r["input_ids"]) <= 512 for r in p.train_rows) and any("packed 6 document" in n for n in p.notices)
    old = prepare(StudioConfig.from_dict(tiny_config(path, data={"max_length": 512, "val_size": 0,
                                                                 "pack_documents": False})))
    assert sum(len(r["input_ids"]) for r in old.train_rows) < 0.5 * trained


def test_media_columns_are_refused_in_one_line_and_unused_columns_named(tmp_path):
    with pytest.raises(DataError, match="images are not supported.*column `images`"):
        load_examples(write_jsonl(tmp_path / "m.jsonl", [{"messages": [], "images": ["a.png"]}]))
    loaded = load_examples(write_jsonl(tmp_path / "x.jsonl", [{"prompt": "a", "completion": "b", "id": 1,
                                                               "source": "web"}]))
    assert any("ignored column(s): id, source" in n for n in loaded.report.notices)


def test_dpo_counts_what_it_trains(tmp_path):
    long_prompt = "word " * 400
    rows = [{"prompt": long_prompt if i < 3 else f"Add {i} and 1.", "chosen": f"{i + 1}.", "rejected": "no."}
            for i in range(12)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    p = prepare(StudioConfig.from_dict(tiny_config(path, method={"kind": "dpo"}, data={"max_length": 64})))
    assert p.stats["train_examples"] + p.stats["val_examples"] == 9
    assert any("3 example(s) dropped: the prompt alone fills data.max_length 64" in n for n in p.notices)


SHAPE_FILES = [  # (our file, its format, records; the peer's demo file of that shape, its records)
    ("alpaca_history.json", "alpaca", 24, "alpaca_en_demo.json", 999),
    ("alpaca_history.json", "alpaca", 24, "identity.json", 91),
    ("preference_sharegpt.json", "preference", 24, "dpo_en_demo.json", 300),
    ("preference_implicit.jsonl", "preference", 24, None, 0),
    ("pretrain.jsonl", "text", 24, "c4_demo.jsonl", 300),
    ("kto.json", "kto", 36, "kto_en_demo.json", 300),
    ("sharegpt_tools.json", "sharegpt", 24, "glaive_toolcall_en_demo.json", 300),
    ("typed_parts.jsonl", "messages", 24, "v1_sft_demo.jsonl", 500)]


@pytest.mark.parametrize("name, fmt, records, peer_name, peer_records", SHAPE_FILES)
@pytest.mark.integration
def test_every_shape_passes_check_data(name, fmt, records, peer_name, peer_records):
    for path, count in ((SHAPES / name, records), (peer(peer_name) if peer_name else None, peer_records)):
        if path is None:
            continue
        report = inspect_data(path, max_length=256).report
        assert report["format"] == fmt and report["records"] == count and not report["problems"], (path, report)


@pytest.mark.slow
@pytest.mark.parametrize("name, fmt, records", sorted({(n, f, r) for n, f, r, _, _ in SHAPE_FILES}))
def test_every_shape_trains_20_steps_with_the_loss_falling(name, fmt, records, tmp_path):
    from studio.engine import runs
    from studio.engine.train import loop

    kind = {"preference": "dpo", "kto": "kto"}.get(fmt, "lora")
    cfg = tiny_config(SHAPES / name, method={"kind": kind}, data={"max_length": 256, "limit": 160},
                      train={"max_steps": 20, "batch_size": 8, "logging_steps": 1,  # KTO's KL estimate wants 8
                             "learning_rate": 5e-4 if kind == "dpo" else 2e-3})
    result = loop.run(StudioConfig.from_dict(cfg), tmp_path / "r")
    losses = [m["loss"] for m in runs.read_metrics(tmp_path / "r") if m.get("loss") is not None]
    assert result.state == "completed" and result.step == 20, result.error
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses


def reasoning_tool_rows(n: int = 24) -> list[dict]:
    """The shape of LLaMA-Factory's reasoning + tool-use demo: v1 messages whose assistant turns hold typed parts
    ``reasoning``, ``tool_call`` and ``text``, ``tool`` turns with the results, and a ``tools`` JSON string."""
    tools = json.dumps([{"type": "function", "function": {"name": "circle_area", "description": "Area of a circle.",
                         "parameters": {"type": "object", "properties": {"radius": {"type": "number"}},
                                        "required": ["radius"]}}}])
    part = lambda kind, value: {"type": kind, "value": value}  # noqa: E731
    return [{"messages": [
        {"role": "system", "content": [part("text", "You reason first, and use tools.")]},
        {"role": "user", "content": [part("text", f"What is the area of a circle of radius {r}?")]},
        {"role": "assistant", "content": [part("reasoning", f"Radius {r}: circle_area computes that."),
                                          part("tool_call", json.dumps({"name": "circle_area",
                                                                        "arguments": {"radius": r}}))]},
        {"role": "tool", "content": [part("text", json.dumps([{"area": round(3.14159 * r * r, 2)}]))]},
        {"role": "assistant", "content": [part("reasoning", "The tool answered."),
                                          part("text", f"The area is {round(3.14159 * r * r, 2)}.")]}],
        "tools": tools} for r in range(1, n + 1)]


@pytest.mark.slow
def test_a_reasoning_and_tool_call_file_trains_with_the_reasoning_inline_and_a_notice(tmp_path):
    from studio.engine import runs
    from studio.engine.train import loop

    path = write_jsonl(tmp_path / "reason_tool_use.jsonl", reasoning_tool_rows())
    report = inspect_data(path, max_length=512).report
    assert report["format"] == "messages" and not report["problems"]
    cfg = StudioConfig.from_dict(tiny_config(path, data={"max_length": 512},
                                             train={"max_steps": 12, "batch_size": 8, "learning_rate": 2e-3}))
    p = prepare(cfg)
    assert any("inline" in n and "<think>" in n for n in p.notices), p.notices
    shown = p.tokenizer.decode(p.train_rows[0]["input_ids"])
    assert "<think>" in shown and '"name": "circle_area"' in shown and "<|im_start|>tool" in shown
    result = loop.run(cfg, tmp_path / "r")
    losses = [m["loss"] for m in runs.read_metrics(tmp_path / "r") if m.get("loss") is not None]
    assert result.state == "completed" and losses[-1] < losses[0], (result.error, losses)
