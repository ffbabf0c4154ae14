"""Records -> examples in TRL's dataset shapes, with a report by row.

Contract: ``load_examples(path, format, columns)`` returns ``Loaded``: the detected format, the
examples and a ``DataReport``. Examples use TRL's own shapes, so its trainers take them as is:
``{"text": str}`` (language modelling), ``{"messages": [{"role", "content"}]}`` (chat) and
``{"prompt": msgs, "chosen": msgs, "rejected": msgs}`` (preference). Records with empty required
cells are dropped and counted; records of the wrong shape are listed as problems with their
row and field, and ``Loaded.raise_for_problems()`` turns the first into one ``DataError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError
from .readers import read_records

# The columns that identify each format, in detection order (the first match wins).
SIGNATURES = {
    "preference": ("chosen", "rejected"),
    "sharegpt": ("conversations",),
    "messages": ("messages",),
    "alpaca": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
CHAT_FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "preference")


def default_objective(fmt: str) -> str:
    """Chat formats train on responses; plain text on every token."""
    return "instruction" if fmt in CHAT_FORMATS else "causal_lm"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
         "bot": "assistant", "system": "system", "function_call": "assistant", "observation": "tool",
         "function": "tool", "tool": "tool"}


class RowProblem(Exception):
    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field_name = field_name


@dataclass
class DataReport:
    file: str
    format: str
    records: int = 0
    examples: int = 0
    empty: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    format: str
    examples: list[dict]
    where: list[str]
    report: DataReport

    def raise_for_problems(self) -> None:
        if self.report.problems:
            more = len(self.report.problems) - 1
            tail = f" (and {more} more; run `python -m studio check-data` for all)" if more else ""
            raise DataError(self.report.problems[0] + tail)
        if not self.examples:
            raise DataError(f"{self.report.file}: no usable records ({self.report.empty} empty)")


def detect_format(columns: list[str]) -> str | None:
    cols = set(columns)
    for fmt, needed in SIGNATURES.items():
        if cols.issuperset(needed):
            return fmt
    strings = [c for c in columns if c]
    return "text" if len(strings) == 1 else None


def load_examples(path: str | Path, fmt: str = "auto", columns: dict | None = None,
                  limit: int = 0, system_prompt: str = "") -> Loaded:
    p = Path(path)
    recs = read_records(p)
    rows = recs.rows[:limit] if limit else recs.rows
    found = list(dict.fromkeys(k for r in rows for k in r))
    rows = _apply_mapping(p.name, rows, found, columns or {})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "auto":
        fmt = detect_format(keys)
        if fmt is None:
            raise DataError(f"{p.name}: cannot tell the format from columns {found}; expected text, "
                            "instruction+output (alpaca), conversations (sharegpt), messages, prompt+completion "
                            "or prompt+chosen+rejected (preference): set data.format and data.columns")
    elif not (fmt == "text" and len(keys) == 1):  # a single column is text, whatever its name
        needed = SIGNATURES[fmt]
        missing = [c for c in needed if c not in keys]
        if missing:
            raise DataError(f"{p.name}: format {fmt} needs column(s) {', '.join(needed)}; missing "
                            f"{', '.join(missing)}; found {', '.join(found)} (map them with data.columns)")
    if fmt == "text" and "text" not in keys:
        rows = [{"text": next(iter(r.values()), None)} for r in rows]
    report = DataReport(file=p.name, format=fmt, records=len(rows), notices=list(recs.notices), columns=found)
    convert = CONVERTERS[fmt]
    examples, where, seen = [], [], set()
    for row, loc in zip(rows, recs.where):
        try:
            ex = convert(row, system_prompt)
        except RowProblem as e:
            report.problems.append(f"{p.name}: {loc}, field '{e.field_name}': {e}")
            continue
        if ex is None:
            report.empty += 1
            continue
        key = json.dumps(ex, sort_keys=True, ensure_ascii=False)
        if key in seen:
            report.duplicates += 1
        seen.add(key)
        examples.append(ex)
        where.append(loc)
    report.examples = len(examples)
    if report.empty:
        report.notices.append(f"{p.name}: {report.empty} record(s) with empty required fields were dropped")
    return Loaded(fmt, examples, where, report)


def _apply_mapping(name: str, rows: list[dict], found: list[str], mapping: dict) -> list[dict]:
    if not mapping:
        return rows
    for studio_name, col in mapping.items():
        if col not in found:
            raise DataError(f"{name}: data.columns maps '{studio_name}' to '{col}', which is not a column; "
                            f"found {', '.join(found)}")
    inverse = {col: studio_name for studio_name, col in mapping.items()}
    return [{inverse.get(k, k): v for k, v in r.items()} for r in rows]


# -- converters: one record -> one example, None when a required cell is empty --------------

def _text(value, field_name: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RowProblem(field_name, f"expected text, got {type(value).__name__}")
    return value


def _content(value, field_name: str) -> str | None:
    """A message's content: a string, or a list of typed parts of which only text is supported."""
    if isinstance(value, list):
        parts = []
        for i, part in enumerate(value):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RowProblem(f"{field_name}[{i}]", f"content part of type '{kind}' is not supported (text only)")
        value = "".join(parts)
    return _text(value, field_name)


def _turns(value, field_name: str) -> list[dict] | None:
    """A list of turns with role/content or from/value keys -> messages."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)  # a CSV cell holding JSON
        except json.JSONDecodeError:
            raise RowProblem(field_name, "expected a list of turns, got plain text") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowProblem(field_name, f"expected a list of turns, got {type(value).__name__}")
    if not value:
        return None
    messages = []
    for i, turn in enumerate(value):
        where = f"{field_name}[{i}]"
        if not isinstance(turn, dict):
            raise RowProblem(where, f"expected an object with role and content, got {type(turn).__name__}")
        role = turn.get("role", turn.get("from"))
        if role not in ROLES:
            raise RowProblem(f"{where}.role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        content = _content(turn.get("content", turn.get("value")), f"{where}.content")
        if content is None:
            return None
        messages.append({"role": ROLES[role], "content": content})
    return messages


def _with_system(messages: list[dict], system: str | None) -> list[dict]:
    if system and messages[0]["role"] != "system":
        return [{"role": "system", "content": system}, *messages]
    return messages


def _chat_example(messages: list[dict] | None, field_name: str, system: str) -> dict | None:
    if messages is None:
        return None
    if not any(m["role"] == "assistant" for m in messages):
        raise RowProblem(field_name, "the conversation has no assistant turn to learn from")
    return {"messages": _with_system(messages, system)}


def _from_text(row: dict, system: str) -> dict | None:
    text = _text(row.get("text"), "text")
    return None if text is None else {"text": text}


def _from_alpaca(row: dict, system: str) -> dict | None:
    instruction, output = _text(row.get("instruction"), "instruction"), _text(row.get("output"), "output")
    if instruction is None or output is None:
        return None
    extra = _text(row.get("input"), "input")
    prompt = f"{instruction}\n{extra}" if extra else instruction
    history = row.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, list) and len(h) == 2 for h in history):
        raise RowProblem("history", "expected a list of [question, answer] pairs")
    messages = []
    for i, (q, a) in enumerate(history):
        q, a = _text(q, f"history[{i}][0]"), _text(a, f"history[{i}][1]")
        if q is None or a is None:
            return None
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return {"messages": _with_system(messages, _text(row.get("system"), "system") or system)}


def _from_sharegpt(row: dict, system: str) -> dict | None:
    messages = _turns(row.get("conversations"), "conversations")
    own = _text(row.get("system"), "system")
    return _chat_example(messages, "conversations", own or system)


def _from_messages(row: dict, system: str) -> dict | None:
    return _chat_example(_turns(row.get("messages"), "messages"), "messages", system)


def _side(value, field_name: str, role: str) -> list[dict] | None:
    if isinstance(value, (list, dict)):
        return _turns(value, field_name)
    text = _text(value, field_name)
    return None if text is None else [{"role": role, "content": text}]


def _from_prompt_completion(row: dict, system: str) -> dict | None:
    prompt = _side(row.get("prompt"), "prompt", "user")
    completion = _side(row.get("completion"), "completion", "assistant")
    if prompt is None or completion is None:
        return None
    return _chat_example(prompt + completion, "completion", system)


def _from_preference(row: dict, system: str) -> dict | None:
    if "conversations" in row:
        prompt = _turns(row.get("conversations"), "conversations")
    elif "prompt" in row:
        prompt = _side(row.get("prompt"), "prompt", "user")
    else:
        raise RowProblem("prompt", "preference records need a prompt (or conversations) column")
    chosen = _side(row.get("chosen"), "chosen", "assistant")
    rejected = _side(row.get("rejected"), "rejected", "assistant")
    if prompt is None or chosen is None or rejected is None:
        return None
    return {"prompt": _with_system(prompt, system), "chosen": chosen, "rejected": rejected}


CONVERTERS = {"text": _from_text, "alpaca": _from_alpaca, "sharegpt": _from_sharegpt, "messages": _from_messages,
              "prompt_completion": _from_prompt_completion, "preference": _from_preference}


def as_conversation(example: dict) -> list[dict] | None:
    """The messages SFT trains on: a chat example's own, or a preference pair's prompt + chosen."""
    if "messages" in example:
        return example["messages"]
    if "prompt" in example:
        return example["prompt"] + example["chosen"]
    return None
