"""A bounded fuzz of the data loader: whatever bytes a file holds, the studio either reads it or
raises its own DataError with a message; nothing else escapes."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.engine.data.formats import load_examples
from studio.engine.errors import DataError

SUFFIXES = [".json", ".jsonl", ".csv", ".txt", ".parquet", ".tsv"]
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                           st.sampled_from(["text", "instruction", "output", "input", "messages", "conversations",
                                            "role", "content", "from", "value", "prompt", "completion", "chosen",
                                            "rejected", "history", "system", "label", "tools", "type",
                                            "loss_weight", "tool_calls", "function", "name", "arguments",
                                            "reasoning_content", "chosen_messages", "rejected_messages",
                                            "images"]), inner, max_size=5),
                       max_leaves=12)


def check(path):
    try:
        loaded = load_examples(path)
        loaded.raise_for_problems()
    except DataError as e:
        assert str(e) and "\n" not in str(e)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(tmp_path, content, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(content)
    check(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(JSONISH, min_size=1, max_size=5), as_lines=st.booleans())
@pytest.mark.integration
def test_random_json_records(tmp_path, rows, as_lines):
    path = tmp_path / ("fuzz.jsonl" if as_lines else "fuzz.json")
    text = "".join(json.dumps(r) + "\n" for r in rows) if as_lines else json.dumps(rows)
    path.write_text(text)
    check(path)
