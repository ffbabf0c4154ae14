"""Examples -> token ids and labels, with the loss mask the objective asks for.

Contract: ``encode(examples, tokenizer, objective, max_length, pack)`` returns ``Encoded`` rows of
``{"input_ids", "labels"}`` (-100 where no loss is taken) and the counts a report needs.

The instruction objective trains the turns whose ``loss_weight`` is 1 (by default: the assistant's), for
any chat template, with or without ``{% generation %}`` markers (most hub templates have none, and TRL's
``assistant_only_loss`` refuses them). For each trained turn ``i`` the template renders ``messages[:i]``
(with the generation prompt before an assistant turn) and ``messages[:i + 1]``; the characters between
the two are the turn (its end-of-turn token included, so the model learns to stop). Tokens whose
characters fall inside a trained turn are trained; every other token is masked.

Before rendering, a conversation is fitted to the template (``fit_to_template``): ``tools`` go to the
template's ``tools`` argument, or into the system message when it has none; tool calls become the
assistant's text (JSON) when the template cannot render ``tool_calls``; reasoning goes where the template
puts ``reasoning_content``; a template with no place for it gets it inline in the answer (``<think>...</think>``,
with a notice), unless the user chose that template (``model.chat_template``): then it is refused in a sentence.

Continued pretraining on plain text packs documents (``pack``): their tokens are concatenated with EOS
between them and cut into ``max_length`` blocks, so a long document is trained whole, not truncated.

``collator(tokenizer, packing, objective, seed)`` makes the rows into batches (padded, padding-free, or masked
for a masked LM) for the trainer and the LR finder alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from studio.engine import objectives
from studio.engine.data.formats import as_conversation
from studio.engine.errors import DataError

MASK_SHARE = 0.15  # masked LM, as BERT: 15 % of the tokens are chosen (80 % masked, 10 % random, 10 % kept)

IGNORE = -100
TOOLS_PROMPT = "You can call these functions. Answer with a JSON call when one helps:\n"


@dataclass
class Encoded:
    rows: list[dict]
    lengths: list[int] = field(default_factory=list)  # tokens per example, before truncation
    truncated: int = 0
    no_target: int = 0  # examples with no trained token left after truncation (dropped)
    tokens_total: int = 0  # tokens of all examples
    tokens_used: int = 0  # of them, inside the rows that train (after truncation or packing)
    notices: list[str] = field(default_factory=list)


def _template(tokenizer) -> str:
    t = tokenizer.chat_template
    return t if isinstance(t, str) else json.dumps(t)


def fit_to_template(tokenizer, messages: list[dict], tools: list | None) -> tuple[list[dict], list | None]:
    """The conversation as this chat template can render it, and the tools to pass it (None: inlined)."""
    template = _template(tokenizer)
    inline = any(m.get("reasoning_content") for m in messages) and "reasoning_content" not in template
    if inline and getattr(tokenizer, "studio_template_chosen", False):
        raise DataError("the data has reasoning parts, but the chat template you chose (model.chat_template) has no "
                        "place for them (no reasoning_content): choose one that has, or drop the reasoning")
    out = []
    for m in messages:
        m = {k: v for k, v in m.items() if k != "loss_weight"}
        if inline and m.get("reasoning_content"):  # the open reasoning models' convention, in the answer itself
            m["content"] = f"<think>\n{m.pop('reasoning_content')}\n</think>\n\n{m.get('content') or ''}"
        if m.get("tool_calls") and "tool_calls" not in template:
            calls = json.dumps([c["function"] for c in m.pop("tool_calls")], ensure_ascii=False)
            m["content"] = (m["content"] + "\n" if m["content"] else "") + calls
        out.append(m)
    if tools and "tools" not in template:
        schemas = TOOLS_PROMPT + json.dumps([t.get("function", t) for t in tools], ensure_ascii=False)
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": out[0]["content"] + "\n\n" + schemas}
        else:
            out.insert(0, {"role": "system", "content": schemas})
        tools = None
    return out, tools


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False, tools: list | None = None) -> str:
    messages, tools = fit_to_template(tokenizer, messages, tools)
    kw = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kw)


def trained(message: dict) -> bool:
    return message.get("loss_weight", 1.0 if message["role"] == "assistant" else 0.0) > 0


def response_spans(tokenizer, messages: list[dict], tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its trained turns."""
    full = render(tokenizer, messages, tools=tools)
    spans = []
    for i, m in enumerate(messages):
        if not trained(m):
            continue
        prefix = render(tokenizer, messages[:i], add_generation_prompt=m["role"] == "assistant", tools=tools) \
            if i else ""
        upto = render(tokenizer, messages[: i + 1], tools=tools)
        if not (full.startswith(upto) and upto.startswith(prefix)):
            raise DataError("the chat template renders a conversation differently from its prefixes, so the "
                            "prompt cannot be masked; set model.chat_template or use method.objective causal_lm")
        spans.append((len(prefix), len(upto)))
    return full, spans


def encode_example(example: dict, tokenizer, objective: str) -> tuple[list[int], list[int]]:
    messages = as_conversation(example)
    tools = example.get("tools")
    if objectives.find(objective).splits_prompt and messages:  # the prompt (masked), the last answer: split
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prompt = tokenizer(render(tokenizer, messages[:last], add_generation_prompt=True, tools=tools),
                           add_special_tokens=False)["input_ids"]
        answer = tokenizer(str(messages[last]["content"]), add_special_tokens=False)["input_ids"]
        answer = [*answer, tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else answer
        return [*prompt, *answer], [IGNORE] * len(prompt) + answer
    if messages is None:
        ids = tokenizer(example["text"], add_special_tokens=True)["input_ids"]
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids = [*ids, tokenizer.eos_token_id]
        return ids, list(ids)
    if not objectives.find(objective).responses_only:
        ids = tokenizer(render(tokenizer, messages, tools=tools), add_special_tokens=False)["input_ids"]
        return ids, list(ids)
    text, spans = response_spans(tokenizer, messages, tools)
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
        is_trained = lab != IGNORE
        if runs and runs[-1][1] == is_trained:
            runs[-1][0].append(tok)
        else:
            runs.append(([tok], is_trained))
    return [(tokenizer.decode(toks), is_trained) for toks, is_trained in runs]


def encode(examples: list[dict], tokenizer, objective: str, max_length: int, pack: bool = False) -> Encoded:
    """Rows to train on; ``pack`` (plain text only) concatenates documents into max_length blocks."""
    if pack and examples and all("text" in ex for ex in examples):
        return _packed(examples, tokenizer, max_length)
    out = Encoded(rows=[])
    thinking = sum(1 for ex in examples if any(m.get("reasoning_content") for m in ex.get("messages") or []))
    if thinking and "reasoning_content" not in _template(tokenizer):
        out.notices.append(f"{thinking} example(s) have reasoning parts and this chat template has no place for "
                           "them: they are written inline in the answer as <think>...</think>, as open reasoning "
                           "models do (choose model.chat_template with reasoning_content to keep them apart)")
    for ex in examples:
        ids, labels = encode_example(ex, tokenizer, objective)
        if objectives.find(objective).splits_prompt:
            _seq2seq_row(out, ids, labels, max_length)
            continue
        out.lengths.append(len(ids))
        out.tokens_total += len(ids)
        if len(ids) > max_length:
            out.truncated += 1
            ids, labels = ids[:max_length], labels[:max_length]
        if all(lbl == IGNORE for lbl in labels[1:]):
            out.no_target += 1
            continue
        out.tokens_used += len(ids)
        out.rows.append({"input_ids": ids, "labels": labels})
    return out


def _seq2seq_row(out: Encoded, ids: list[int], labels: list[int], max_length: int) -> None:
    """The encoder reads the prompt, the decoder is trained on the answer; each is cut at ``max_length``."""
    cut = next((i for i, lab in enumerate(labels) if lab != IGNORE), len(ids))
    source, target = ids[:cut], labels[cut:]
    out.lengths.append(max(len(source), len(target)))
    out.tokens_total += len(source) + len(target)
    if len(source) > max_length or len(target) > max_length:
        out.truncated += 1
    if not target:
        out.no_target += 1
        return
    source, target = source[:max_length], target[:max_length]
    out.tokens_used += len(source) + len(target)
    out.rows.append({"input_ids": source, "labels": target})


def _packed(examples: list[dict], tokenizer, max_length: int) -> Encoded:
    out = Encoded(rows=[])
    stream: list[int] = []
    for ex in examples:
        ids, _ = encode_example(ex, tokenizer, "causal_lm")  # each ends with EOS
        out.lengths.append(len(ids))
        stream += ids
    out.tokens_total = len(stream)
    for start in range(0, len(stream), max_length):
        block = stream[start:start + max_length]
        if len(block) > 1:
            out.rows.append({"input_ids": block, "labels": list(block)})
            out.tokens_used += len(block)
    out.truncated = 0
    if out.tokens_total:
        out.notices.append(f"packed {len(examples)} document(s) into {len(out.rows)} block(s) of up to {max_length} "
                           f"tokens: {out.tokens_used:,} of {out.tokens_total:,} tokens are trained "
                           f"({out.tokens_used / out.tokens_total:.1%})")
    return out


def length_stats(lengths: list[int], max_length: int) -> dict:
    if not lengths:
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "over_max_length": 0}
    s = sorted(lengths)

    def q(p: float) -> int:
        return s[min(len(s) - 1, round(p * (len(s) - 1)))]

    return {"min": s[0], "median": q(0.5), "p95": q(0.95), "max": s[-1],
            "over_max_length": sum(1 for n in s if n > max_length)}


def collator(tokenizer, packing: bool = False, objective: str = "causal_lm", seed: int = 0):
    """Right-pads input_ids with the pad token and labels with -100, so a pad that equals EOS is never trained
    while the real EOS (already in the labels) is. With ``packing``: no padding at all; the batch becomes one
    row, position_ids restart at each example (transformers then masks attention per example, with any
    attention kernel) and each example's first label is -100, so nothing is predicted across a boundary."""
    from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if objectives.find(objective).masks_tokens:
        return DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=MASK_SHARE, seed=seed)
    if packing:
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")
