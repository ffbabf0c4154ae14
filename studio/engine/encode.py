"""Examples -> token ids and labels, with the loss mask the objective asks for.

Contract: ``encode(examples, tokenizer, objective, max_length)`` returns ``Encoded`` rows of
``{"input_ids", "labels"}`` (-100 where no loss is taken) and the length statistics.

The instruction objective trains on assistant tokens only, for any chat template, with or
without ``{% generation %}`` markers (most hub templates have none, and TRL's
``assistant_only_loss`` refuses them). For each assistant turn ``i`` the template renders
``messages[:i]`` with the generation prompt and ``messages[:i + 1]``; the characters between the
two are the response (its end-of-turn token included, so the model learns to stop). Tokens whose
characters fall inside a response are trained; every other token is masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import as_conversation
from .errors import DataError

IGNORE = -100


@dataclass
class Encoded:
    rows: list[dict]
    lengths: list[int] = field(default_factory=list)  # before truncation
    truncated: int = 0
    no_target: int = 0  # examples with no trained token left after truncation (dropped)


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def response_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    full = render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        upto = render(tokenizer, messages[: i + 1])
        if not (full.startswith(upto) and upto.startswith(prefix)):
            raise DataError("the chat template renders a conversation differently from its prefixes, so the "
                            "prompt cannot be masked; set model.chat_template or use method.objective causal_lm")
        spans.append((len(prefix), len(upto)))
    return full, spans


def encode_example(example: dict, tokenizer, objective: str) -> tuple[list[int], list[int]]:
    messages = as_conversation(example)
    if messages is None:
        ids = tokenizer(example["text"], add_special_tokens=True)["input_ids"]
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids = [*ids, tokenizer.eos_token_id]
        return ids, list(ids)
    if objective != "instruction":
        text = render(tokenizer, messages)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids, list(ids)
    text, spans = response_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = enc["input_ids"], []
    for tok, (s, e) in zip(ids, enc["offset_mapping"]):
        inside = any(a <= s < b or (s == e and a < e <= b) for a, b in spans)
        labels.append(tok if inside else IGNORE)
    return ids, labels


def segments(example: dict, tokenizer, objective: str, max_length: int) -> list[tuple[str, bool]]:
    """The example as the model sees it: (text, trained) runs of tokens, cut at max_length."""
    ids, labels = encode_example(example, tokenizer, objective)
    ids, labels = ids[:max_length], labels[:max_length]
    runs: list[tuple[list[int], bool]] = []
    for tok, lab in zip(ids, labels):
        trained = lab != IGNORE
        if runs and runs[-1][1] == trained:
            runs[-1][0].append(tok)
        else:
            runs.append(([tok], trained))
    return [(tokenizer.decode(toks), trained) for toks, trained in runs]


def encode(examples: list[dict], tokenizer, objective: str, max_length: int) -> Encoded:
    out = Encoded(rows=[])
    for ex in examples:
        ids, labels = encode_example(ex, tokenizer, objective)
        out.lengths.append(len(ids))
        if len(ids) > max_length:
            out.truncated += 1
            ids, labels = ids[:max_length], labels[:max_length]
        if all(lbl == IGNORE for lbl in labels[1:]):
            out.no_target += 1
            continue
        out.rows.append({"input_ids": ids, "labels": labels})
    return out


def length_stats(lengths: list[int], max_length: int) -> dict:
    if not lengths:
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "over_max_length": 0}
    s = sorted(lengths)

    def q(p: float) -> int:
        return s[min(len(s) - 1, round(p * (len(s) - 1)))]

    return {"min": s[0], "median": q(0.5), "p95": q(0.95), "max": s[-1],
            "over_max_length": sum(1 for n in s if n > max_length)}
