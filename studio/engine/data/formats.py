"""Records -> examples in TRL's dataset shapes, with a report by row.

Contract: ``load_examples(path, format, columns)`` returns ``Loaded``: the detected format, the
examples and a ``DataReport``. Examples use TRL's own shapes, so its trainers take them as is:
``{"text": str}`` (language modelling), ``{"messages": [...], "tools"?: [...]}`` (chat; turns as
``messages.py`` keeps them), ``{"prompt": msgs, "chosen": msgs, "rejected": msgs}`` (preference; a
shared prefix of two whole conversations becomes the prompt) and ``{"prompt": msgs, "completion": msgs,
"label": bool}`` (KTO's unpaired preference). Records with empty required cells are dropped and
counted; records of the wrong shape are listed as problems with their row and field, and
``Loaded.raise_for_problems()`` turns the first into one ``DataError``. Every column the format does not
use is named in a notice; media columns are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from studio.engine.data.messages import MEDIA, RowProblem, text_of, tools_of, turns
from studio.engine.data.readers import read_records
from studio.engine.errors import DataError, FormatUnknown

# The columns that identify each format, in detection order (the first match wins).
SIGNATURES = {
    "preference": (("chosen", "rejected"), ("chosen_messages", "rejected_messages")),
    "kto": (("label", "messages"), ("label", "conversations"), ("label", "prompt", "completion")),
    "sharegpt": (("conversations",),),
    "messages": (("messages",),),
    "alpaca": (("instruction", "output"),),
    "prompt_completion": (("prompt", "completion"),),
    "text": (("text",),),
}
USED = {"text": {"text"}, "alpaca": {"instruction", "input", "output", "system", "history"},
        "sharegpt": {"conversations", "system", "tools"}, "messages": {"messages", "system", "tools"},
        "prompt_completion": {"prompt", "completion", "system", "tools"},
        "preference": {"prompt", "conversations", "chosen", "rejected", "chosen_messages", "rejected_messages",
                       "system", "tools"},
        "kto": {"messages", "conversations", "prompt", "completion", "label", "system", "tools"}}
CHAT_FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "preference", "kto")
# Column pairs people already use for a prompt and its answer (matched without regard to case), read as
# alpaca's instruction -> output when no format's own columns are there; the first pair found wins.
COMMON_PAIRS = (("question", "answer"), ("question", "response"), ("prompt", "response"), ("prompt", "answer"),
                ("query", "reply"), ("query", "response"), ("query", "answer"), ("instruction", "response"),
                ("instruction", "answer"), ("input", "output"), ("input", "target"), ("source", "target"),
                ("src", "tgt"), ("human", "assistant"), ("user", "assistant"), ("context", "response"),
                ("text", "label"), ("text", "summary"), ("document", "summary"), ("article", "highlights"))


def default_objective(fmt: str) -> str:
    """Chat formats train on responses; plain text on every token."""
    return "instruction" if fmt in CHAT_FORMATS else "causal_lm"


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
    for fmt, shapes in SIGNATURES.items():
        if any(cols.issuperset(needed) for needed in shapes):
            return fmt
    strings = [c for c in columns if c]
    return "text" if len(strings) == 1 else None


def common_mapping(columns: list[str]) -> dict | None:
    """``{"instruction": col, "output": col}`` for the first common prompt/answer pair among ``columns``, when the
    columns make no format of their own; None otherwise."""
    if detect_format(columns) not in (None, "text") or (detect_format(columns) == "text" and len(columns) == 1):
        return None
    lower = {c.lower().strip(): c for c in columns if isinstance(c, str)}
    for prompt, answer in COMMON_PAIRS:
        if prompt in lower and answer in lower:
            return {"instruction": lower[prompt], "output": lower[answer]}
    return None


def _refuse_media(name: str, found: list[str]) -> None:
    media = [c for c in found if c.lower() in MEDIA]
    if media:
        kind = media[0].lower().rstrip("s").replace("_url", "").replace("input_", "")
        raise DataError(f"{name}: {kind}s are not supported (the studio trains on text): column `{media[0]}`")


def load_examples(path: str | Path, fmt: str = "auto", columns: dict | None = None,
                  limit: int = 0, system_prompt: str = "") -> Loaded:
    p = Path(path)
    recs = read_records(p)
    rows = recs.rows[:limit] if limit else recs.rows
    found = list(dict.fromkeys(k for r in rows for k in r))
    _refuse_media(p.name, found)
    guessed = common_mapping(found) if fmt in ("auto", "alpaca") and not columns else None
    rows = _apply_mapping(p.name, rows, found, columns or guessed or {})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "auto":
        fmt = detect_format(keys)
        if fmt is None:
            raise FormatUnknown(f"{p.name}: cannot tell the format from columns {found}; expected text, "
                                "instruction+output (alpaca), conversations (sharegpt), messages, prompt+completion "
                                "or prompt+chosen+rejected (preference): pick the prompt and answer columns, or set "
                                "data.format and data.columns", [str(c) for c in found])
    elif not (fmt == "text" and len(keys) == 1):  # a single column is text, whatever its name
        shapes = SIGNATURES[fmt]
        if not any(set(keys).issuperset(needed) for needed in shapes):
            needed = " or ".join(", ".join(n) for n in shapes)
            missing = [c for c in shapes[0] if c not in keys] if len(shapes) == 1 else []
            gap = f"; missing {', '.join(missing)}" if missing else ""
            raise DataError(f"{p.name}: format {fmt} needs column(s) {needed}{gap}; found {', '.join(found)} "
                            "(map them with data.columns)")
    if fmt == "text" and "text" not in keys:
        rows = [{"text": next(iter(r.values()), None)} for r in rows]
        keys = ["text"]
    report = DataReport(file=p.name, format=fmt, records=len(rows), notices=list(recs.notices), columns=found)
    if guessed:
        report.notices.append(f"{p.name}: read column '{guessed['instruction']}' as the prompt and "
                              f"'{guessed['output']}' as the answer (common names); map others with data.columns")
    ignored = [c for c in keys if c not in USED[fmt]]
    if ignored:
        report.notices.append(f"{p.name}: ignored column(s): {', '.join(ignored)} (not part of the {fmt} format)")
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

def _with_system(messages: list[dict], system: str | None) -> list[dict]:
    if system and messages[0]["role"] != "system":
        return [{"role": "system", "content": system}, *messages]
    return messages


def _with_tools(example: dict, row: dict) -> dict:
    tools = tools_of(row.get("tools"))
    return {**example, "tools": tools} if tools else example


def _chat_example(messages: list[dict] | None, field_name: str, system: str, row: dict) -> dict | None:
    if messages is None:
        return None
    if not any(m["role"] == "assistant" for m in messages):
        raise RowProblem(field_name, "the conversation has no assistant turn to learn from")
    return _with_tools({"messages": _with_system(messages, system)}, row)


def _from_text(row: dict, system: str) -> dict | None:
    text = text_of(row.get("text"), "text")
    return None if text is None else {"text": text}


def _from_alpaca(row: dict, system: str) -> dict | None:
    instruction, output = text_of(row.get("instruction"), "instruction"), text_of(row.get("output"), "output")
    if instruction is None or output is None:
        return None
    extra = text_of(row.get("input"), "input")
    prompt = f"{instruction}\n{extra}" if extra else instruction
    history = row.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, list) and len(h) == 2 for h in history):
        raise RowProblem("history", "expected a list of [question, answer] pairs")
    messages = []
    for i, (q, a) in enumerate(history):
        q, a = text_of(q, f"history[{i}][0]"), text_of(a, f"history[{i}][1]")
        if q is None or a is None:
            return None
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return {"messages": _with_system(messages, text_of(row.get("system"), "system") or system)}


def _from_sharegpt(row: dict, system: str) -> dict | None:
    own = text_of(row.get("system"), "system")
    return _chat_example(turns(row.get("conversations"), "conversations"), "conversations", own or system, row)


def _from_messages(row: dict, system: str) -> dict | None:
    return _chat_example(turns(row.get("messages"), "messages"), "messages", system, row)


def _side(value, field_name: str, role: str) -> list[dict] | None:
    if isinstance(value, (list, dict)):
        return turns(value, field_name)
    text = text_of(value, field_name)
    return None if text is None else [{"role": role, "content": text}]


def _from_prompt_completion(row: dict, system: str) -> dict | None:
    prompt = _side(row.get("prompt"), "prompt", "user")
    completion = _side(row.get("completion"), "completion", "assistant")
    if prompt is None or completion is None:
        return None
    return _chat_example(prompt + completion, "completion", system, row)


def _implicit_prompt(chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """Two whole conversations -> (their shared prefix as the prompt, chosen rest, rejected rest), as TRL does."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    if n == 0:
        raise RowProblem("chosen", "the chosen and rejected conversations share no prompt (the turns before the "
                                   "answers must be the same)")
    return chosen[:n], chosen[n:], rejected[n:]


def _from_preference(row: dict, system: str) -> dict | None:
    c_key, r_key = ("chosen_messages", "rejected_messages") if "chosen_messages" in row else ("chosen", "rejected")
    if "conversations" in row or "prompt" in row:
        prompt = turns(row.get("conversations"), "conversations") if "conversations" in row else \
            _side(row.get("prompt"), "prompt", "user")
        chosen, rejected = _side(row.get(c_key), c_key, "assistant"), _side(row.get(r_key), r_key, "assistant")
    else:  # implicit prompt: two whole conversations
        if isinstance(row.get(c_key), str) and not row[c_key].lstrip().startswith("["):
            raise RowProblem("prompt", "preference records need a prompt (or conversations) column, or whole "
                                       "conversations in chosen and rejected")
        whole_c, whole_r = turns(row.get(c_key), c_key), turns(row.get(r_key), r_key)
        if whole_c is None or whole_r is None:
            return None
        prompt, chosen, rejected = _implicit_prompt(whole_c, whole_r)
    if prompt is None or chosen is None or rejected is None:
        return None
    return _with_tools({"prompt": _with_system(prompt, system), "chosen": chosen, "rejected": rejected}, row)


def _from_kto(row: dict, system: str) -> dict | None:
    label = row.get("label")
    if isinstance(label, str) and label.strip().lower() in ("true", "false", "1", "0"):
        label = label.strip().lower() in ("true", "1")
    if not isinstance(label, bool) and label not in (0, 1):
        raise RowProblem("label", f"expected true or false (is the answer desirable?), got {label!r}")
    if "prompt" in row and "completion" in row:
        prompt, completion = _side(row.get("prompt"), "prompt", "user"), _side(row.get("completion"), "completion",
                                                                                  "assistant")
    else:
        field_name = "messages" if "messages" in row else "conversations"
        messages = turns(row.get(field_name), field_name)
        if messages is None:
            return None
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None:
            raise RowProblem(field_name, "the conversation has no assistant turn to label")
        prompt, completion = messages[:last], messages[last:last + 1]
    if not prompt or not completion:
        return None
    return _with_tools({"prompt": _with_system(prompt, system), "completion": completion, "label": bool(label)}, row)


CONVERTERS = {"text": _from_text, "alpaca": _from_alpaca, "sharegpt": _from_sharegpt, "messages": _from_messages,
              "prompt_completion": _from_prompt_completion, "preference": _from_preference, "kto": _from_kto}


def as_conversation(example: dict) -> list[dict] | None:
    """The messages SFT trains on: a chat example's own, a preference pair's prompt + chosen, a KTO
    example's prompt + completion (the caller keeps only the desirable ones)."""
    if "messages" in example:
        return example["messages"]
    if "chosen" in example:
        return example["prompt"] + example["chosen"]
    if "completion" in example:
        return example["prompt"] + example["completion"]
    return None
