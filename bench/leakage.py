"""Near-duplicate prompts at scale: the studio's groups (datasketch MinHash LSH, each candidate pair confirmed by its
exact Jaccard similarity) against the baseline every pair compared exactly, on synthetic prompts with planted
rewordings (each planted prompt also appears with a word added in front or behind).

    python bench/leakage.py [--prompts 2000 5000] [--planted 0.1] [--seed 0]

Prints, per size: seconds for the studio and for all pairs, the ratio, and the groups each found (the same
groups: the LSH only skips pairs that cannot reach the threshold, and a missed one would show here).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.engine.data import dedup  # noqa: E402

WORDS = [f"w{i}" for i in range(5000)]


def prompts(n: int, planted: float, rng: random.Random) -> list[str]:
    base = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 25))) for _ in range(n)]
    for i in rng.sample(range(n), int(n * planted)):
        base.append(rng.choice(["please ", "now "]) + base[i] if rng.random() < 0.5 else base[i] + " please")
    rng.shuffle(base)
    return base


def all_pairs(texts: list[str], threshold: float = dedup.NEAR) -> list[list[int]]:
    sets = [dedup.shingles(t) for t in texts]
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i):
            if dedup.jaccard(sets[i], sets[j]) >= threshold:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    found: dict[int, list[int]] = {}
    for i in range(len(texts)):
        found.setdefault(root(i), []).append(i)
    return [g for g in found.values() if len(g) > 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--planted", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for n in a.prompts:
        texts = prompts(n, a.planted, random.Random(a.seed))
        t0 = time.perf_counter()
        ours = dedup.groups(texts)
        studio_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs = all_pairs(texts)
        baseline_s = time.perf_counter() - t0
        same = sorted(map(sorted, ours)) == sorted(map(sorted, theirs))
        print(f"{len(texts)} prompts: studio {studio_s:.2f} s, all pairs {baseline_s:.2f} s, "
              f"ratio {baseline_s / studio_s:.1f}x; groups {len(ours)} vs {len(theirs)} (same: {same})")


if __name__ == "__main__":
    main()
