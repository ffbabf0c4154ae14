"""Every format, every file type, and the peer files, unchanged."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLES, SHAPES, peer, write_jsonl

from studio.engine.data.formats import load_examples
from studio.engine.errors import DataError

ALPACA = {"instruction": "Name a colour.", "input": "", "output": "Blue.", "system": "Be brief.",
          "history": [["Hi", "Hello!"]]}
SHAREGPT = {"conversations": [{"from": "system", "value": "Sys"}, {"from": "human", "value": "Q?"},
                              {"from": "function_call", "value": "{\"name\": \"f\"}"},
                              {"from": "observation", "value": "42"}, {"from": "gpt", "value": "A."}]}
MESSAGES = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello "},
                                                      {"type": "text", "text": "there"}]},
                         {"role": "assistant", "content": "Hi."}]}
PROMPT_COMPLETION = {"prompt": "2+2?", "completion": "4"}
PREFERENCE = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
SHAREGPT_PREF = {"conversations": [{"from": "human", "value": "2+2?"}], "chosen": {"from": "gpt", "value": "4"},
                 "rejected": {"from": "gpt", "value": "5"}}


@pytest.mark.parametrize("record, fmt", [(ALPACA, "alpaca"), (SHAREGPT, "sharegpt"), (MESSAGES, "messages"),
                                         (PROMPT_COMPLETION, "prompt_completion"), (PREFERENCE, "preference"),
                                         (SHAREGPT_PREF, "preference"), ({"text": "plain"}, "text")])
def test_detects_each_format(tmp_path, record, fmt):
    loaded = load_examples(write_jsonl(tmp_path / "d.jsonl", [record, record]))
    assert loaded.format == fmt and len(loaded.examples) == 2 and loaded.report.duplicates == 1


def test_alpaca_maps_system_history_and_input(tmp_path):
    rec = {**ALPACA, "input": "Not red."}
    ex = load_examples(write_jsonl(tmp_path / "a.jsonl", [rec])).examples[0]
    assert ex["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": "Hello!"},
                              {"role": "user", "content": "Name a colour.\nNot red."},
                              {"role": "assistant", "content": "Blue."}]


def test_sharegpt_roles_and_typed_parts(tmp_path):
    ex = load_examples(write_jsonl(tmp_path / "s.jsonl", [SHAREGPT])).examples[0]
    assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    ex = load_examples(write_jsonl(tmp_path / "m.jsonl", [MESSAGES])).examples[0]
    assert ex["messages"][0]["content"] == "Hello there"


def test_preference_shapes(tmp_path):
    a = load_examples(write_jsonl(tmp_path / "p.jsonl", [SHAREGPT_PREF])).examples[0]
    b = load_examples(write_jsonl(tmp_path / "q.jsonl", [PREFERENCE])).examples[0]
    for ex in (a, b):
        assert ex["prompt"] == [{"role": "user", "content": "2+2?"}]
        assert ex["chosen"] == [{"role": "assistant", "content": "4"}]
        assert ex["rejected"] == [{"role": "assistant", "content": "5"}]


def test_every_file_type_reads_the_same_records(tmp_path):
    rows = [{"instruction": f"Say {i}.", "input": "", "output": str(i)} for i in range(5)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "cols.json").write_text(json.dumps({k: [r[k] for r in rows] for k in rows[0]}))
    write_jsonl(tmp_path / "a.jsonl", rows)
    with (tmp_path / "a.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    results = [load_examples(tmp_path / n).examples for n in ("a.json", "cols.json", "a.jsonl", "a.csv", "a.parquet")]
    assert all(r == results[0] for r in results) and len(results[0]) == 5


def test_txt_paragraphs_and_lines(tmp_path):
    (tmp_path / "p.txt").write_text("one\ntwo\n\nthree\n")
    (tmp_path / "l.txt").write_text("a\nb\nc\n")
    assert [e["text"] for e in load_examples(tmp_path / "p.txt").examples] == ["one\ntwo", "three"]
    assert [e["text"] for e in load_examples(tmp_path / "l.txt").examples] == ["a", "b", "c"]
    assert load_examples(tmp_path / "l.txt").where == ["line 1", "line 2", "line 3"]


def test_explicit_format_and_column_mapping(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Q1", "answer": "A1", "text": "ignored"}])
    loaded = load_examples(path, "prompt_completion", {"prompt": "question", "completion": "answer"})
    assert loaded.format == "prompt_completion"
    assert loaded.examples[0]["messages"] == [{"role": "user", "content": "Q1"},
                                              {"role": "assistant", "content": "A1"}]
    guessed = load_examples(path)  # detection alone: a question/answer pair says more than a stray text column
    assert guessed.format == "alpaca" and guessed.examples == loaded.examples
    assert any("read column 'question' as the prompt" in n for n in guessed.report.notices)


def test_common_column_names_need_no_mapping(tmp_path):
    for header in ("question,answer", "Prompt,Response", "query,reply", "input,output"):
        p = tmp_path / f"{header.split(',')[0]}.csv"
        p.write_text(f"{header}\nWhat is 2 and 2?,4\nWhat is 3 and 3?,6\n")
        loaded = load_examples(p)
        assert loaded.format == "alpaca" and loaded.examples[0]["messages"][1]["content"] == "4", header
    odd = tmp_path / "odd.csv"
    odd.write_text("frage,antwort\nZwei und zwei?,vier\n")
    with pytest.raises(DataError, match="cannot tell the format"):  # other names: mapped by the user
        load_examples(odd)
    mapped = load_examples(odd, "alpaca", {"instruction": "frage", "output": "antwort"})
    assert mapped.examples[0]["messages"][1]["content"] == "vier"


def test_single_column_is_text(tmp_path):
    path = write_jsonl(tmp_path / "body.jsonl", [{"body": "x"}, {"body": "y"}])
    assert load_examples(path).examples == [{"text": "x"}, {"text": "y"}]


def test_null_cells_are_dropped_and_counted(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"instruction": ["A", None, "C"], "output": ["a", "b", float("nan")]})
    frame.to_parquet(tmp_path / "n.parquet")
    loaded = load_examples(tmp_path / "n.parquet")
    assert len(loaded.examples) == 1 and loaded.report.empty == 2
    assert any("2 record(s)" in n for n in loaded.report.notices)


@pytest.mark.parametrize("name, fmt, count, peer_name, peer_count", [
    ("alpaca_history.json", "alpaca", 24, "alpaca_en_demo.json", 999),
    ("alpaca_history.json", "alpaca", 24, "identity.json", 91),
    ("preference_sharegpt.json", "preference", 24, "dpo_en_demo.json", 300),
    ("pretrain.jsonl", "text", 24, "c4_demo.jsonl", 300)])
def test_files_of_other_tools_load_unchanged(name, fmt, count, peer_name, peer_count):
    """Our own file of each shape; the peer tool's demo file of that shape too where it lies beside the clone."""
    for path, records in ((SHAPES / name, count), (peer(peer_name), peer_count)):
        if path is None:
            continue
        loaded = load_examples(path)
        loaded.raise_for_problems()
        assert loaded.format == fmt and len(loaded.examples) == records and not loaded.report.problems


def test_alpaca_history_and_system_become_turns():
    examples = load_examples(SHAPES / "alpaca_history.json").examples
    first = examples[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant"]
    assert first[1]["content"] == "What is a river?" and first[3]["content"] == "Describe a red river."


@pytest.mark.parametrize("name", ["instructions.json", "chat.jsonl", "qa.csv", "preference.jsonl", "notes.txt"])
def test_our_samples_load_cleanly(name):
    loaded = load_examples(SAMPLES / name)
    loaded.raise_for_problems()
    assert loaded.examples and not loaded.report.problems
