"""Write the studio's own sample datasets and train studio-tiny's tokenizer (deterministic).

Run from the repo root: ``python assets/make_assets.py`` (``... feedback`` writes only feedback.jsonl, the
reward model's sample). Its outputs are committed; run it again
only to change them. The samples are templated tasks a tiny model can learn in a minute on a CPU,
so the quickstart shows the loss falling.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

WORDS = ["garden", "river", "planet", "candle", "window", "forest", "silver", "bridge", "pocket", "meadow",
         "harbor", "lantern", "pepper", "marble", "ticket", "violin", "orange", "castle", "shadow", "rabbit"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
UNITS = [("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("kilograms", "grams", 1000),
         ("hours", "minutes", 60), ("minutes", "seconds", 60), ("litres", "millilitres", 1000)]
NOTES = """\
Fine-tuning adapts a pretrained language model to a task with a small dataset. The base model already
knows the language; the new examples teach it a format, a tone or a skill.

LoRA freezes the base weights and learns two thin matrices per layer. Their product is added to the
frozen weight, so the adapter is small and can be switched on and off.

QLoRA stores the frozen base in four bits and trains a LoRA adapter on top. It trades some speed for a
large saving in memory, which lets a bigger model fit on one card.

Instruction tuning computes the loss on the answers only. The prompt is read but never trained, so the
model learns to respond rather than to repeat questions.

A validation split is held out from training. When the training loss keeps falling while the
validation loss rises, the model has started to memorise its examples.

The learning rate sets the size of each step. Warmup raises it slowly at the start; a cosine schedule
lowers it smoothly towards the end.

Gradient clipping limits the norm of the gradient before each update. A single bad batch then cannot
throw the weights far from where they were.

Perplexity is the exponential of the average loss per token. Lower is better; a model that guesses
uniformly over its vocabulary has a perplexity equal to the vocabulary size.

People judge outputs in ways metrics miss. A blind comparison hides which model wrote which answer,
and many such votes give a ranking with honest uncertainty.

Checkpoints let a run resume after a stop. A checkpoint that was only half written must never be
picked, or the resumed run starts from damaged weights.
"""


def tasks(rng: random.Random):
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    word = rng.choice(WORDS)
    day = rng.randrange(7)
    big, small, factor = rng.choice(UNITS)
    n = rng.randint(2, 9)
    return [
        (f"Add {a} and {b}.", "", f"{a} + {b} = {a + b}."),
        (f"Convert {n} {big} to {small}.", "", f"{n} {big} is {n * factor} {small}."),
        ("Reverse the word below.", word, f"The word \"{word}\" reversed is \"{word[::-1]}\"."),
        (f"What day comes after {DAYS[day]}?", "", f"{DAYS[(day + 1) % 7]} comes after {DAYS[day]}."),
        ("Write the word below in capital letters.", word, word.upper()),
    ]


def make_samples(rng: random.Random) -> dict[str, list]:
    alpaca, seen = [], set()
    while len(alpaca) < 400:
        for instruction, inp, out in tasks(rng):
            if (instruction, inp) not in seen:
                seen.add((instruction, inp))
                alpaca.append({"instruction": instruction, "input": inp, "output": out})
    alpaca = alpaca[:400]
    chat = []
    for _ in range(120):
        (q1, i1, a1), (q2, i2, a2) = rng.sample(tasks(rng), 2)
        chat.append({"messages": [
            {"role": "system", "content": "You are a careful assistant. Answer in one sentence."},
            {"role": "user", "content": f"{q1}\n{i1}".strip()}, {"role": "assistant", "content": a1},
            {"role": "user", "content": f"{q2}\n{i2}".strip()}, {"role": "assistant", "content": a2}]})
    preference = []
    for _ in range(120):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        wrong = a + b + rng.choice([-3, -2, -1, 1, 2, 3])
        preference.append({"prompt": f"Add {a} and {b}.", "chosen": f"{a} + {b} = {a + b}.",
                           "rejected": f"{a} + {b} = {wrong}."})
    qa, seen = [], set()
    while len(qa) < 200:
        for q, i, o in tasks(rng):
            prompt = f"{q}\n{i}".strip()
            if prompt not in seen and len(qa) < 200:
                seen.add(prompt)
                qa.append({"prompt": prompt, "completion": o})
    return {"alpaca": alpaca, "chat": chat, "preference": preference, "qa": qa}


REFUSALS = ["I cannot help with that.", "I don't know.", "Please ask someone else.",
            "That is not something I can answer.", "No idea, sorry.", "Look it up yourself."]


def make_feedback(rng: random.Random, n: int = 240) -> list[dict]:
    """Preference pairs a reward model can learn and an RL stage can chase: the chosen answer does the task; the
    rejected one refuses, or answers a different question."""
    pairs = []
    while len(pairs) < n:
        todo = tasks(rng)
        k = rng.randrange(len(todo))
        q, i, answer = todo[k]
        if rng.random() < 0.5:
            rejected = rng.choice(REFUSALS)
        else:
            rejected = todo[rng.choice([j for j in range(len(todo)) if j != k])][2]
        pairs.append({"prompt": f"{q}\n{i}".strip(), "chosen": answer, "rejected": rejected})
    return pairs


def write_feedback() -> None:
    """Separate from ``main`` (its own seed, outside the tokenizer's corpus): adding it changed nothing else."""
    with (HERE / "samples" / "feedback.jsonl").open("w") as f:
        for rec in make_feedback(random.Random(20261129)):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def main() -> None:
    rng = random.Random(20261128)
    samples = make_samples(rng)
    out = HERE / "samples"
    out.mkdir(exist_ok=True)
    (out / "instructions.json").write_text(json.dumps(samples["alpaca"], indent=1, ensure_ascii=False) + "\n")
    for name, key in (("chat.jsonl", "chat"), ("preference.jsonl", "preference")):
        with (out / name).open("w") as f:
            for rec in samples[key]:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with (out / "qa.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["prompt", "completion"])
        w.writeheader()
        w.writerows(samples["qa"])
    (out / "notes.txt").write_text(NOTES)

    from studio.engine.tiny import TOKENIZER_DIR, train_tokenizer

    corpus = [NOTES] + [json.dumps(r, ensure_ascii=False) for k in samples for r in samples[k]]
    corpus += [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in samples["alpaca"]]
    train_tokenizer(corpus).save_pretrained(TOKENIZER_DIR)
    print(f"wrote {out} and {TOKENIZER_DIR}")


if __name__ == "__main__":
    write_feedback() if sys.argv[1:] == ["feedback"] else main()
