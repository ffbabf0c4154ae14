"""Writes studio_general.jsonl: the bundled quick check of general ability (`studio benchmark RUN` with no
--tasks): four-way multiple choice on capitals, sums, opposites and kinds of things, 160 items, fixed by a seed.
Run it again only to change the items: `python assets/benchmarks/make_general.py`."""

import json
import random
from pathlib import Path

CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin", "Austria": "Vienna",
            "Portugal": "Lisbon", "Greece": "Athens", "Ireland": "Dublin", "Norway": "Oslo", "Poland": "Warsaw",
            "Hungary": "Budapest", "Finland": "Helsinki", "Sweden": "Stockholm", "Denmark": "Copenhagen",
            "Belgium": "Brussels", "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Egypt": "Cairo",
            "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Canada": "Ottawa", "Mexico": "Mexico City",
            "Russia": "Moscow", "Turkey": "Ankara", "Thailand": "Bangkok", "Vietnam": "Hanoi", "Cuba": "Havana",
            "Argentina": "Buenos Aires", "Australia": "Canberra", "Iran": "Tehran", "Iraq": "Baghdad",
            "Ukraine": "Kyiv", "Romania": "Bucharest", "Bulgaria": "Sofia", "Serbia": "Belgrade", "Croatia": "Zagreb",
            "Latvia": "Riga", "Estonia": "Tallinn"}
OPPOSITES = {"hot": "cold", "big": "small", "fast": "slow", "up": "down", "light": "dark", "early": "late",
             "full": "empty", "happy": "sad", "open": "closed", "strong": "weak", "rich": "poor", "old": "young",
             "wet": "dry", "loud": "quiet", "hard": "soft", "high": "low", "long": "short", "thick": "thin",
             "win": "lose", "buy": "sell", "push": "pull", "first": "last", "inside": "outside", "day": "night",
             "north": "south", "east": "west", "left": "right", "true": "false", "give": "take", "arrive": "leave",
             "begin": "end", "clean": "dirty", "heavy": "light", "near": "far", "cheap": "expensive",
             "safe": "dangerous", "sweet": "sour", "wide": "narrow", "friend": "enemy", "question": "answer"}
KINDS = {"animal": ["dog", "horse", "eagle", "salmon", "tiger", "rabbit", "whale", "sparrow", "frog", "bee"],
         "fruit": ["apple", "banana", "cherry", "mango", "pear", "plum", "grape", "lemon", "peach", "orange"],
         "colour": ["red", "blue", "green", "yellow", "purple", "brown", "white", "black", "pink", "grey"],
         "tool": ["hammer", "saw", "wrench", "drill", "chisel", "shovel", "rake", "screwdriver", "pliers", "axe"]}


def four(rng, right, pool):
    wrong = rng.sample([x for x in pool if x != right], 3)
    choices = [right, *wrong]
    rng.shuffle(choices)
    return choices, choices.index(right)


def items(seed: int = 0) -> list[dict]:
    rng, out = random.Random(seed), []
    for country, city in CAPITALS.items():
        choices, answer = four(rng, city, list(CAPITALS.values()))
        out.append({"question": f"What is the capital of {country}?", "choices": choices, "answer": answer})
    for _ in range(40):
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        choices, answer = four(rng, str(a + b), [str(a + b + d) for d in (-10, -2, -1, 1, 2, 10)] + [str(a + b)])
        out.append({"question": f"What is {a} + {b}?", "choices": choices, "answer": answer})
    for word, opposite in OPPOSITES.items():
        choices, answer = four(rng, opposite, [w for w in OPPOSITES.values() if w != word])
        out.append({"question": f"What is the opposite of \"{word}\"?", "choices": choices, "answer": answer})
    for kind, members in KINDS.items():
        others = [m for k, ms in KINDS.items() if k != kind for m in ms]
        for m in members:
            wrong = rng.sample(others, 3)
            choices = [m, *wrong]
            rng.shuffle(choices)
            out.append({"question": f"Which of these is a {kind}?", "choices": choices, "answer": choices.index(m)})
    return out


if __name__ == "__main__":
    rows = items()
    (Path(__file__).parent / "studio_general.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(len(rows), "items")
