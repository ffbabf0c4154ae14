"""Each bad input gives one readable line naming the file and where; nothing is guessed."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, write_jsonl

from studio.engine.data.formats import load_examples
from studio.engine.errors import DataError


def error_of(path, *args) -> str:
    with pytest.raises(DataError) as e:
        load_examples(path, *args).raise_for_problems()
    message = str(e.value)
    assert "\n" not in message and path.name in message
    return message


def test_malformed_jsonl_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c",}\n')
    assert "line 3" in error_of(p) and "not valid JSON" in error_of(p)


def test_ragged_csv_row_is_refused_not_shifted(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("prompt,completion\nq1,a1\nq2,a2,extra\n")
    msg = error_of(p)
    assert "line 3" in msg and "3 fields" in msg and "header has 2" in msg


def test_csv_row_number_counts_multiline_cells(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('prompt,completion\n"q1\nstill q1",a1\nq2\n')
    assert "line 4" in error_of(p)


@pytest.mark.parametrize("content", ["", "   \n", "prompt,completion\n"])
def test_empty_or_header_only(tmp_path, content):
    p = tmp_path / "d.csv"
    p.write_text(content)
    assert "no records" in error_of(p)


def test_missing_columns_lists_found_and_expected(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"frage": "q", "antwort": "a"}])  # (question/answer are read as such)
    msg = error_of(p)
    assert "frage" in msg and "antwort" in msg and "instruction+output" in msg
    msg = error_of(p, "alpaca")
    assert "needs column(s) instruction, output" in msg and "found frage, antwort" in msg


def test_latin1_is_converted_with_a_notice(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("prompt,completion\ncaf\xe9,cr\xe8me\n".encode("latin-1"))
    loaded = load_examples(p)
    assert loaded.examples[0]["messages"][0]["content"] == "café"
    assert any("not UTF-8" in n and "line 2" in n for n in loaded.report.notices)


def test_utf16_is_converted_with_a_notice(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes('{"text": "naïve"}\n'.encode("utf-16"))
    loaded = load_examples(p)
    assert loaded.examples == [{"text": "naïve"}] and "UTF-16" in loaded.report.notices[0]


def test_mixed_shapes(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps([{"text": "a"}, ["text", "b"], 3]))
    msg = error_of(p)
    assert "record 2" in msg and "mixed shapes" in msg


def test_row_with_wrong_field_type_names_row_and_field(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": ["x"]}])
    msg = error_of(p)
    assert "line 2" in msg and "'output'" in msg


def test_unknown_role(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "wizard", "content": "x"}]}])
    msg = error_of(p)
    assert "line 1" in msg and "messages[0].role" in msg and "wizard" in msg


@pytest.mark.parametrize("name, content, hint", [("d.json", "just some words\nmore words\n", "plain text"),
                                                 ("d.parquet", "a,b\n1,2\n", "not a Parquet file"),
                                                 ("d.jsonl", '[{"text": "a"},\n {"text": "b"}]\n', "rename")])
def test_file_that_lies_about_its_type(tmp_path, name, content, hint):
    p = tmp_path / name
    p.write_text(content)
    assert hint in error_of(p)


def test_binary_and_unknown_types(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b"\x00\x01\x02binary")
    assert "binary" in error_of(p)
    q = tmp_path / "d.xlsx"
    q.write_text("x")
    assert "unsupported file type" in error_of(q)


@pytest.mark.slow
def test_cli_prints_one_line_and_no_traceback(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "a"}\n{oops\n')
    out = subprocess.run([sys.executable, "-m", "studio", "check-data", str(p)], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "bad.jsonl: line 2" in out.stderr


def test_preference_without_a_prompt_is_a_problem_not_an_empty_row(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"chosen": "good", "rejected": "bad"}])
    msg = error_of(p)
    assert "line 1" in msg and "'prompt'" in msg
