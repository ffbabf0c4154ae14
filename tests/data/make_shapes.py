"""Writes tests/data/shapes/: one small file for each data shape practitioners bring from other tools (LLaMA-Factory's
demo formats among them), so the tests of those shapes need nothing outside the repository. Deterministic: run it
again and the files do not change (``python tests/data/make_shapes.py``).

| file | shape |
| --- | --- |
| alpaca_history.json | JSON array, alpaca (instruction, input, output) with a system column and `history` pairs |
| sharegpt_tools.json | JSON array, sharegpt (`from`/`value`) with `function_call` / `observation` turns, a `system`
  column and a `tools` column (a JSON schema list as a string) |
| preference_sharegpt.json | JSON array, sharegpt `conversations` + a `chosen` and a `rejected` turn |
| preference_implicit.jsonl | JSON lines, `chosen` / `rejected` whole conversations sharing their prompt |
| kto.json | JSON array, messages + a boolean `label` (half desirable) |
| typed_parts.jsonl | JSON lines, messages whose content is typed parts (`text`, `reasoning`) with `loss_weight` |
| pretrain.jsonl | JSON lines, `{"text": ...}` documents for continued pretraining |
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent / "shapes"

THINGS = [("river", "water that flows to the sea"), ("mountain", "land that rises high above its surroundings"),
          ("library", "a place that lends books"), ("bakery", "a shop that makes bread"),
          ("harbour", "a sheltered place where ships stay"), ("forest", "a large area covered with trees"),
          ("desert", "a dry land with little rain"), ("island", "land with water all around it"),
          ("orchard", "a field of fruit trees"), ("bridge", "a way across a river or a road"),
          ("lantern", "a lamp with a case around its flame"), ("meadow", "a field of grass and flowers")]
COLOURS = ["red", "blue", "green", "yellow", "white", "black"]
CITIES = [("Paris", 18), ("Oslo", 7), ("Cairo", 31), ("Lima", 22), ("Tokyo", 15), ("Quebec", 3)]


def alpaca_history() -> list[dict]:
    rows = []
    for i, (thing, meaning) in enumerate(THINGS * 2):
        colour = COLOURS[i % len(COLOURS)]
        row = {"instruction": f"Describe a {colour} {thing}.", "input": "",
               "output": f"A {colour} {thing} is {meaning}, seen in {colour}."}
        if i % 3 == 0:
            row["history"] = [[f"What is a {thing}?", f"A {thing} is {meaning}."]]
        if i % 4 == 0:
            row["system"] = "You answer in one sentence."
        rows.append(row)
    return rows


TOOLS = json.dumps([{"name": "get_weather", "description": "The weather in a city today",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                    "required": ["city"]}}])


def sharegpt_tools() -> list[dict]:
    rows = []
    for i, (city, degrees) in enumerate(CITIES * 4):
        turns = [{"from": "human", "value": f"What is the weather in {city} today?"},
                 {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": city}})},
                 {"from": "observation", "value": json.dumps({"city": city, "celsius": degrees + i % 3})},
                 {"from": "gpt", "value": f"It is {degrees + i % 3} degrees in {city} today."}]
        row = {"conversations": turns, "tools": TOOLS}
        if i % 2:
            row["system"] = "You are a weather assistant. Use the tools you are given."
        rows.append(row)
    return rows


def preference_sharegpt() -> list[dict]:
    return [{"conversations": [{"from": "human", "value": f"What is a {thing}?"}],
             "chosen": {"from": "gpt", "value": f"A {thing} is {meaning}."},
             "rejected": {"from": "gpt", "value": f"I do not know what a {thing} is."}}
            for thing, meaning in THINGS * 2]


def preference_implicit() -> list[dict]:
    rows = []
    for thing, meaning in THINGS * 2:
        prompt = [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": f"Define {thing}."}]
        rows.append({"chosen": prompt + [{"role": "assistant", "content": f"{thing.title()}: {meaning}."}],
                     "rejected": prompt + [{"role": "assistant", "content": f"{thing.title()}? Look it up."}]})
    return rows


def kto() -> list[dict]:
    rows = []
    for i, (thing, meaning) in enumerate(THINGS * 3):
        good = i % 2 == 0
        answer = f"A {thing} is {meaning}." if good else f"A {thing} is a kind of {COLOURS[i % len(COLOURS)]} sound."
        rows.append({"messages": [{"role": "user", "content": f"Tell me what a {thing} is."},
                                  {"role": "assistant", "content": answer}], "label": good})
    return rows


def typed_parts() -> list[dict]:
    part = lambda kind, value: {"type": kind, "value": value}  # noqa: E731
    rows = []
    for i, (thing, meaning) in enumerate(THINGS * 2):
        first = [{"role": "user", "content": [part("text", "hi")], "loss_weight": 0.0},
                 {"role": "assistant", "content": [part("text", "Hello! Ask me about words.")], "loss_weight": 0.0}]
        ask = {"role": "user", "content": [part("text", f"What is a {thing}?")], "loss_weight": 0.0}
        content = [part("text", f"A {thing} is {meaning}.")]
        if i % 2:
            content.insert(0, part("reasoning", f"The word {thing} names {meaning}."))
        rows.append({"messages": (first if i % 3 == 0 else []) + [ask, {"role": "assistant", "content": content,
                                                                       "loss_weight": 1.0}]})
    return rows


def pretrain() -> list[dict]:
    docs = []
    for i in range(24):
        things = [THINGS[(i + k) % len(THINGS)] for k in range(6)]
        docs.append({"text": " ".join(f"The {t} is {m}." for t, m in things) +
                     f"\nIn {CITIES[i % len(CITIES)][0]} the {things[0][0]} is {COLOURS[i % len(COLOURS)]}."})
    return docs


SHAPES = {"alpaca_history.json": alpaca_history, "sharegpt_tools.json": sharegpt_tools,
          "preference_sharegpt.json": preference_sharegpt, "preference_implicit.jsonl": preference_implicit,
          "kto.json": kto, "typed_parts.jsonl": typed_parts, "pretrain.jsonl": pretrain}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, make in SHAPES.items():
        rows = make()
        if name.endswith(".jsonl"):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            text = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
        (HERE / name).write_text(text)


if __name__ == "__main__":
    main()
