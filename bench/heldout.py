"""Write bench/data/plurals.json: a task and a chat format the studio never saw while it was tuned.

A sharegpt file (``conversations`` with ``from``/``value`` turns) asking for English plurals, to check that
the first-run defaults learn a task other than the bundled samples. Deterministic.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NOUNS = """apple table chair window garden river mountain teacher student doctor city country baby lady story
party family cherry berry puppy penny box fox bus glass class dish brush church watch match beach kiss tax
wish lunch bench bush guess dress boss toy key day boy monkey valley journey holiday tray donkey chimney
book pen cup door road car train plane ship boat bird cat dog horse cow sheep lamp desk clock phone shoe
sock hat coat shirt bag ring song idea word name place friend farmer singer player writer painter dancer
cook baker driver pilot nurse guard king queen prince princess fly spy lily army navy body copy duty enemy
hobby jelly memory pony query ruby study tomato potato hero echo wolf knife leaf life wife shelf calf""".split()
IRREGULAR = {"child": "children", "man": "men", "woman": "women", "mouse": "mice", "goose": "geese",
             "tooth": "teeth", "foot": "feet", "person": "people", "ox": "oxen", "cactus": "cacti"}
F_TO_VES = {"wolf", "knife", "leaf", "life", "wife", "shelf", "calf"}


def plural(word: str) -> str:
    if word in IRREGULAR:
        return IRREGULAR[word]
    if word in F_TO_VES:
        return word[:-2] + "ves" if word.endswith("fe") else word[:-1] + "ves"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")) or word in ("tomato", "potato", "hero", "echo"):
        return word + "es"
    return word + "s"


def main() -> None:
    rng = random.Random(7)
    words = sorted(set(NOUNS)) + sorted(IRREGULAR)
    rows = []
    for w in words:
        ask = rng.choice([f"What is the plural of {w}?", f"Give the plural of the word {w}.",
                          f"Plural of {w}, please."])
        rec = {"conversations": [{"from": "human", "value": ask},
                                 {"from": "gpt", "value": f"The plural of {w} is {plural(w)}."}]}
        if rng.random() < 0.3:
            rec["system"] = "Answer with one short sentence."
        rows.append(rec)
    rng.shuffle(rows)
    out = Path(__file__).resolve().parent / "data" / "plurals.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {len(rows)} conversations to {out}")


if __name__ == "__main__":
    main()
