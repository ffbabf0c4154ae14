"""The training objectives, registered like the methods: what each trains, on which model family and data, with
which transformers head, and how its examples are made. The rest of the studio asks ``get(name)`` (a head, a
pipeline tag, whether the prompt is split off or tokens are masked) instead of comparing an objective's name;
tests/test_objectives.py scans for such comparisons. ``auto`` is not one: ``resolve`` makes it definite from the
model's family and the data's format."""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = {"decoder": "a decoder", "encoder": "an encoder (BERT-style)",
            "encoder-decoder": "an encoder-decoder (T5/BART-style)"}


@dataclass(frozen=True)
class Objective:
    name: str
    help: str
    family: str = "decoder"  # the model family it trains (FAMILIES); each other family has one objective of its own
    head: str = "AutoModelForCausalLM"  # the transformers auto class of the model it trains
    task: str = "text-generation"  # the hub's pipeline tag on the model card
    data: str = "any"  # any | records (prompt/response: the chat formats) | text (plain text)
    masks_tokens: bool = False  # the collator hides a share of the tokens and makes the labels itself
    splits_prompt: bool = False  # the encoder reads the prompt, the decoder writes the answer
    responses_only: bool = False  # the loss is on the responses only (the prompt's tokens are masked)
    packs_documents: bool = False  # plain text may be packed into max_length blocks (data.pack_documents)
    why: str = ""  # what it does, said where a model of its family is given another objective


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("causal_lm", "loss on every token", packs_documents=True),
    Objective("instruction", "loss on the responses only", data="records", responses_only=True),
    Objective("masked_lm", "BERT-style: a share of the tokens hidden and predicted", family="encoder",
              head="AutoModelForMaskedLM", task="fill-mask", data="text", masks_tokens=True,
              why="it cannot generate text, so it trains with method.objective masked_lm (on plain text)"),
    Objective("seq2seq", "T5/BART-style: the encoder reads the prompt and the decoder writes the answer",
              family="encoder-decoder", head="AutoModelForSeq2SeqLM", task="text2text-generation", data="records",
              splits_prompt=True,
              why="it trains with method.objective seq2seq (the encoder reads the prompt, the decoder writes the "
                  "answer)"),
)}


NONE = Objective("", "not decided yet (auto) or not one of the studio's: a causal LM, nothing special")


def get(name: str) -> Objective:
    return OBJECTIVES[name]


def find(name: str | None) -> Objective:
    """The objective of that name, or ``NONE`` (auto, None, or a name no longer registered): its flags are off."""
    return OBJECTIVES.get(name or "", NONE)


def of_family(family: str) -> str | None:
    """The objective a model family must train (an encoder: masked_lm), or None: a decoder's depends on the data."""
    return next((o.name for o in OBJECTIVES.values() if o.family == family and family != "decoder"), None)


def refusal(name: str, family: str, fmt: str, chat_formats, model: str, data: str) -> str | None:
    """Why objective ``name`` cannot train model ``model`` (of ``family``) on ``data`` (of format ``fmt``), in one
    line, or None."""
    o = get(name)
    if o.family != family and o.family != "decoder":
        hint = ": use studio-minilm or a BERT-style hub model, or objective causal_lm" if o.family == "encoder" else ""
        return f"method.objective {name} needs {FAMILIES[o.family]} model; {model} is a {family} model{hint}"
    if o.family != family:
        return f"{model} is {FAMILIES[family]} model: {get(of_family(family)).why}"
    if o.data == "records" and fmt not in chat_formats:
        if o.splits_prompt:
            return f"method.objective {name} maps prompts to answers; {data} is {fmt} (give prompt/response records)"
        return f"method.objective {name} needs prompt/response records; {data} is {fmt} (use causal_lm)"
    if o.data == "text" and fmt != "text":
        return (f"method.objective {name} trains on plain text; {data} is {fmt} (give a text file, or a JSON/CSV "
                "with a text column)")
    return None
