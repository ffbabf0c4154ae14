"""Everything a run needs before any weights load, and everything that can fail on bad input.

Contract: ``prepare(config) -> Prepared``: the data read and checked (``DataError`` with the file, row
and field), the objective resolved, the base model found and its tokenizer loaded, the split made (or a
separate validation file read), and the examples tokenized and masked for the method. The counts in
``Prepared.stats`` are the examples that will actually train; each drop has a notice (undesirable KTO
rows in a supervised run, preference pairs whose prompt fills ``data.max_length``, truncated examples,
examples with no trained token left).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.config import ConfigError, StudioConfig
from studio.engine import methods, objectives
from studio.engine.data import dedup
from studio.engine.data.encode import encode, length_stats, render
from studio.engine.data.formats import CHAT_FORMATS, default_objective, load_examples
from studio.engine.data.split import Split, make_split
from studio.engine.errors import JobError
from studio.engine.models import load_tokenizer, model_family, resolve_model, reward_run
from studio.engine.train import trackers

RECORDS = {"preference": "prompt, chosen, rejected", "kto": "a conversation and a label"}  # what such data holds

@dataclass
class Prepared:
    """What a run needs before training: data checked and tokenized, model resolved."""
    config: StudioConfig
    objective: str
    train_rows: list[dict]
    val_rows: list[dict]
    tokenizer: object
    resolved: object
    notices: list[str]
    stats: dict
    split: Split


def resolve_objective(config: StudioConfig, fmt: str, family: str = "decoder") -> str:
    """The objective the data and the model allow: an encoder (BERT-style) trains masked_lm on plain text; a
    decoder trains causal_lm or instruction."""
    objective = config.method.objective
    if objective == "auto":
        objective = objectives.of_family(family) or default_objective(fmt)
    problem = objectives.refusal(objective, family, fmt, CHAT_FORMATS, config.model.name, Path(config.data.path).name)
    if problem:
        raise ConfigError(problem)
    return objective


def preflight(config: StudioConfig):
    """The quick part of ``prepare``, for a page to answer at once: the data read and checked against the
    method, the objective, the base model found (its config only). Returns the loaded examples."""
    d = config.data
    if not d.path:
        raise ConfigError("data.path is not set")
    trackers.check(config)
    loaded = load_examples(d.path, d.format, d.columns, d.limit, d.system_prompt)
    loaded.raise_for_problems()
    wanted = methods.of(config).data
    if wanted in RECORDS and loaded.format != wanted:
        raise ConfigError(f"method.kind {config.method.kind} needs {wanted} data ({RECORDS[wanted]}); "
                          f"{Path(d.path).name} is {loaded.format}")
    if wanted == "prompts":
        if loaded.format not in CHAT_FORMATS:
            raise ConfigError(f"method.kind {config.method.kind} samples answers to prompts; {Path(d.path).name} is "
                              f"{loaded.format} (plain text has no prompts): give prompts, chats or preference pairs")
        reward_run(config.method.reward_model)
    resolve_objective(config, loaded.format, model_family(resolve_model(config.model, config_only=True).path))
    return loaded


def preflight_only(config: StudioConfig) -> None:
    """``preflight`` that answers nothing but its errors (what a child process sends back)."""
    preflight(config)


def prepare(config: StudioConfig) -> Prepared:
    d = config.data
    loaded = preflight(config)
    wanted = methods.of(config).data
    resolved = resolve_model(config.model)
    objective = resolve_objective(config, loaded.format, model_family(resolved.path))
    tokenizer = load_tokenizer(resolved, config.model)
    val_loaded = _validation_file(config)
    groups = [] if val_loaded or not d.val_size else dedup.groups([dedup.prompt_text(ex) for ex in loaded.examples])
    split = make_split(d.path, len(loaded.examples), d.val_size, config.train.seed, d.val_path,
                       len(val_loaded.examples) if val_loaded else 0, groups)
    train_ex = [loaded.examples[i] for i in split.train]
    val_ex = val_loaded.examples if val_loaded else [loaded.examples[i] for i in split.val]
    if config.train.early_stopping_patience and not val_ex:
        raise ConfigError("train.early_stopping_patience needs validation examples: set data.val_size > 0 or "
                          "data.val_path")
    notices = [*loaded.report.notices, *resolved.notices]
    if groups:
        held = set(split.val)
        apart = sum(1 for g in groups if 0 < len(held.intersection(g)) < len(g))
        notices.append(f"{sum(map(len, groups))} rows share a prompt (the same or nearly: {len(groups)} groups): "
                       + ("each group is kept on one side of the train / validation split" if not apart else
                          f"{apart} groups are larger than the validation split and were split row by row: "
                          "an evaluation on it says how many of its prompts trained"))
    base = {"config": config, "tokenizer": tokenizer, "resolved": resolved, "split": split}
    if wanted in RECORDS:
        return _preferences(base, loaded.format, objective, train_ex, val_ex, notices)
    if wanted == "prompts":
        return _prompts(base, loaded.format, objective, train_ex, val_ex, notices)
    if loaded.format == "kto":
        train_ex, val_ex = _desirable(train_ex, val_ex, notices)
    return _supervised(base, loaded.format, objective, train_ex, val_ex, notices)


def _validation_file(config: StudioConfig):
    d = config.data
    if not d.val_path:
        return None
    loaded = load_examples(d.val_path, d.format, d.columns, 0, d.system_prompt)
    loaded.raise_for_problems()
    return loaded


def _desirable(train_ex: list[dict], val_ex: list[dict], notices: list[str]) -> tuple[list[dict], list[dict]]:
    """Supervised training on KTO data learns only the answers labelled desirable."""
    kept = [[ex for ex in part if ex["label"]] for part in (train_ex, val_ex)]
    left = len(train_ex) + len(val_ex) - len(kept[0]) - len(kept[1])
    if left:
        notices.append(f"left out {left} undesirable answer(s) (label false): supervised training would teach them; "
                       "method.kind kto learns from both kinds")
    return kept[0], kept[1]


def _supervised(base: dict, fmt: str, objective: str, train_ex, val_ex, notices: list[str]) -> Prepared:
    d = base["config"].data
    pack = d.pack_documents and objectives.find(objective).packs_documents and fmt == "text"
    enc_train, enc_val = (encode(ex, base["tokenizer"], objective, d.max_length, pack) for ex in (train_ex, val_ex))
    if objectives.find(objective).masks_tokens:  # the collator hides 15 % of the tokens and makes the labels
        for row in enc_train.rows + enc_val.rows:
            row.pop("labels", None)
    if not enc_train.rows:
        raise JobError(f"{Path(d.path).name}: no example has a token to train on after truncation to "
                       f"data.max_length {d.max_length}")
    notices += enc_train.notices
    truncated = enc_train.truncated + enc_val.truncated
    if truncated:
        used = enc_train.tokens_used + enc_val.tokens_used
        total = enc_train.tokens_total + enc_val.tokens_total
        notices.append(f"{truncated} example(s) longer than data.max_length {d.max_length} were truncated: "
                       f"{used:,} of {total:,} tokens are trained ({used / max(total, 1):.1%})")
    dropped = enc_train.no_target + enc_val.no_target
    if dropped:
        notices.append(f"{dropped} example(s) had no response tokens left after truncation and were dropped")
    stats = {"format": fmt, "objective": objective, "train_examples": len(enc_train.rows),
             "val_examples": len(enc_val.rows), "truncated": truncated,
             "lengths": length_stats(enc_train.lengths + enc_val.lengths, d.max_length)}
    return Prepared(objective=objective, train_rows=enc_train.rows, val_rows=enc_val.rows, notices=notices,
                    stats=stats, **base)


def _preferences(base: dict, fmt: str, objective: str, train_ex, val_ex, notices: list[str]) -> Prepared:
    """DPO and KTO tokenize in TRL; pairs whose prompt alone fills max_length would be dropped there without
    a word, so they are dropped here, counted and said."""
    tok, d, kind = base["tokenizer"], base["config"].data, base["config"].method.kind  # kind: the line it shows
    lengths, kept = [], []
    for part in (train_ex, val_ex):
        keep = []
        for ex in part:
            prompt = len(tok(render(tok, ex["prompt"], add_generation_prompt=True, tools=ex.get("tools")),
                             add_special_tokens=False)["input_ids"])
            lengths.append(prompt)
            if prompt < d.max_length:
                keep.append(ex)
        kept.append(keep)
    dropped = len(train_ex) + len(val_ex) - len(kept[0]) - len(kept[1])
    if dropped:
        notices.append(f"{dropped} example(s) dropped: the prompt alone fills data.max_length {d.max_length}, "
                       "leaving no room for the answer")
    if not kept[0]:
        raise JobError(f"{Path(d.path).name}: every prompt fills data.max_length {d.max_length}; raise it")
    stats = {"format": fmt, "objective": kind, "train_examples": len(kept[0]), "val_examples": len(kept[1]),
             "truncated": dropped, "lengths": length_stats(lengths, d.max_length)}
    return Prepared(objective=objective, train_rows=kept[0], val_rows=kept[1], notices=notices, stats=stats, **base)


def prompt_of(example: dict) -> list[dict] | None:
    """The conversation up to the answer: a pair's or a KTO row's prompt, a chat's turns before its last answer."""
    if "prompt" in example:
        return example["prompt"]
    messages = example.get("messages") or []
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    return messages[:last] if last else None


def _prompts(base: dict, fmt: str, objective: str, train_ex, val_ex, notices: list[str]) -> Prepared:
    """RL samples its own answers: each example gives only its prompt (GRPO's conversational prompt column)."""
    d = base["config"].data
    rows = [[{"prompt": p} for p in map(prompt_of, part) if p] for part in (train_ex, val_ex)]
    if not rows[0]:
        raise JobError(f"{Path(d.path).name}: no example has a prompt to sample answers for")
    kind = base["config"].method.kind
    notices.append(f"method.kind {kind} uses the prompts only: the model writes its own answers and the reward "
                   "model scores them")
    stats = {"format": fmt, "objective": kind, "train_examples": len(rows[0]), "val_examples": len(rows[1]),
             "truncated": 0, "lengths": length_stats([], d.max_length)}
    return Prepared(objective=objective, train_rows=rows[0], val_rows=rows[1], notices=notices, stats=stats, **base)
