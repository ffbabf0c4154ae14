"""One conversation turn as the studio keeps it: ``{"role", "content"}`` plus, where the data has them,
``tool_calls`` (OpenAI style), ``reasoning_content`` and ``loss_weight``.

Contract: ``turns(value, field)`` reads a list of turns in any of the shapes practitioners have: role/content
or from/value (sharegpt), content as a string or as typed parts (``{"type": "text", "text" | "value"}``,
``reasoning`` / ``thinking`` parts, ``tool_call`` parts), sharegpt's ``function_call`` / ``observation``
turns and OpenAI's ``tool_calls`` / ``tool`` role. ``tools_of(value)`` reads a ``tools`` column (a JSON
list or its string). Media parts and columns are refused in one sentence, never dropped.
A problem raises ``RowProblem`` naming the field.
"""

from __future__ import annotations

import json

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
         "bot": "assistant", "system": "system", "function_call": "assistant", "observation": "tool",
         "function": "tool", "tool": "tool", "ipython": "tool"}
MEDIA = ("image", "images", "audio", "audios", "video", "videos", "image_url", "input_audio")
REASONING = ("reasoning", "thinking", "think")


class RowProblem(Exception):
    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field_name = field_name


def text_of(value, field_name: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RowProblem(field_name, f"expected text, got {type(value).__name__}")
    return value


def _call(value, field_name: str) -> dict:
    """A tool call as {"type": "function", "function": {"name", "arguments"}} from a dict or its JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RowProblem(field_name, "a tool call must be JSON with a name and arguments") from None
    if isinstance(value, dict) and "function" in value and isinstance(value["function"], dict):
        value = value["function"]
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise RowProblem(field_name, "a tool call must be JSON with a name and arguments")
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass
    return {"type": "function", "function": {"name": value["name"], "arguments": args}}


def _parts(value: list, field_name: str) -> tuple[str, str, list[dict]]:
    """Typed parts -> (text, reasoning, tool calls)."""
    text, reasoning, calls = [], [], []
    for i, part in enumerate(value):
        where = f"{field_name}[{i}]"
        if isinstance(part, str):
            text.append(part)
            continue
        if not isinstance(part, dict):
            raise RowProblem(where, f"expected a typed part, got {type(part).__name__}")
        kind = part.get("type", "text")
        body = part.get("text", part.get("value", part.get(kind)))
        if kind in MEDIA:
            raise RowProblem(where, f"{kind} parts are not supported: the studio trains on text")
        if kind == "tool_call":
            calls.append(_call(body, where))
        elif kind in ("text", *REASONING) and isinstance(body, str):
            (reasoning if kind in REASONING else text).append(body)
        else:
            raise RowProblem(where, f"a part of type {kind!r} needs a text, value or {kind} field with a string"
                             if kind in ("text", *REASONING) else f"parts of type {kind!r} are not supported")
    return "".join(text), "".join(reasoning), calls


def turn(raw, where: str) -> dict | None:
    """One turn; None when its content is empty (the record is then dropped as empty)."""
    if not isinstance(raw, dict):
        raise RowProblem(where, f"expected an object with role and content, got {type(raw).__name__}")
    role = raw.get("role", raw.get("from"))
    if role not in ROLES:
        raise RowProblem(f"{where}.role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    content = raw.get("content", raw.get("value"))
    reasoning, calls = text_of(raw.get("reasoning_content"), f"{where}.reasoning_content") or "", []
    if isinstance(content, list):
        content, more, calls = _parts(content, f"{where}.content")
        reasoning += more
    if role == "function_call":
        calls, content = [_call(content, f"{where}.value")], ""
    calls += [_call(c, f"{where}.tool_calls") for c in raw.get("tool_calls") or []]
    content = text_of(content, f"{where}.content") or ""
    if not content and not calls:
        return None
    msg = {"role": ROLES[role], "content": content}
    if calls:
        msg["tool_calls"] = calls
    if reasoning:
        msg["reasoning_content"] = reasoning
    if "loss_weight" in raw:
        weight = raw["loss_weight"]
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight not in (0, 1):
            raise RowProblem(f"{where}.loss_weight", f"expected 0 or 1, got {weight!r}")
        msg["loss_weight"] = float(weight)
    return msg


def turns(value, field_name: str) -> list[dict] | None:
    """A list of turns with role/content or from/value keys -> messages; None when empty."""
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
    messages = []
    for i, raw in enumerate(value):
        msg = turn(raw, f"{field_name}[{i}]")
        if msg is None:
            return None
        messages.append(msg)
    return messages or None


def tools_of(value, field_name: str = "tools") -> list[dict] | None:
    """A tools column: a JSON list of function schemas, or that list as a string."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RowProblem(field_name, "expected a JSON list of tool schemas") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RowProblem(field_name, "expected a JSON list of tool schemas")
    return [t if "function" in t or "type" in t else {"type": "function", "function": t} for t in value]
