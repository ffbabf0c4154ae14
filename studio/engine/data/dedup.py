"""Exact and near duplicates: within a dataset (``check-data``, and the split that keeps each group of
near-duplicate prompts on one side) and between a run's training prompts and the prompts it is evaluated on.

Contract:
- ``normalise(text)``: case folded, punctuation dropped, spaces collapsed: what "exact" compares.
- ``groups(texts, threshold) -> list[list[int]]``: indices of texts that are exact or near duplicates of each
  other (near: the Jaccard similarity of their word 1- and 2-gram sets at least ``threshold``, candidates found
  with MinHash LSH from ``datasketch`` and each confirmed exactly), linked transitively; only groups of two or
  more, each sorted, in the order of their first member.
- ``overlap(seen, texts, threshold) -> list[str | None]``: for each text "exact" when its normalised form is one
  of ``seen``'s, "near" when it is a near duplicate of one, else None.
- ``prompt_text(example)``: what is compared for an example: the user's turns (a conversation, an instruction,
  a preference pair's prompt) or the whole text.
"""

from __future__ import annotations

import re
import unicodedata

NEAR = 0.8  # Jaccard similarity of word 1- and 2-gram sets from which two prompts are near duplicates (a reworded
#            question keeps most of its words and pairs; a template filled with another word or number falls under it)
NUM_PERM = 128  # MinHash permutations: with the lenient LSH threshold below, a pair at NEAR is all but never missed


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def shingles(text: str) -> set[str]:
    """Words and word pairs of the normalised text (a one-word text is its word)."""
    words = normalise(text).split()
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def prompt_text(example: dict) -> str:
    if "text" in example:
        return str(example["text"])
    if "messages" in example:
        return _user_turns(example["messages"])
    prompt = example.get("prompt")  # a preference pair's or a KTO row's: a conversation, or a string
    if isinstance(prompt, list):
        return _user_turns(prompt)
    return " ".join(str(example.get(k) or "") for k in ("instruction", "input", "prompt")).strip()


def _user_turns(messages: list) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages if isinstance(m, dict) and m.get("role") == "user")


def _minhashes(sets: list[set[str]]):
    from datasketch import MinHash

    return MinHash.bulk([[s.encode() for s in sorted(x)] or [b""] for x in sets], num_perm=NUM_PERM)


def _lsh(threshold: float):
    from datasketch import MinHashLSH

    return MinHashLSH(threshold=max(0.3, threshold - 0.3), num_perm=NUM_PERM)  # lenient: each pair is confirmed


def groups(texts: list[str], threshold: float = NEAR) -> list[list[int]]:
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first: dict[str, int] = {}
    for i, t in enumerate(texts):  # exact (normalised) duplicates
        join(i, first.setdefault(normalise(t), i))
    reps = sorted(set(first.values()))  # one text per exact group is enough for the near pairs
    sets = {i: shingles(texts[i]) for i in reps}
    if len(reps) > 1:
        lsh = _lsh(threshold)
        for i, mh in zip(reps, _minhashes([sets[i] for i in reps])):
            for j in lsh.query(mh):
                if jaccard(sets[i], sets[j]) >= threshold:
                    join(i, j)
            lsh.insert(i, mh)
    found: dict[int, list[int]] = {}
    for i in range(len(texts)):
        found.setdefault(root(i), []).append(i)
    return [g for g in found.values() if len(g) > 1]


def overlap(seen: list[str], texts: list[str], threshold: float = NEAR) -> list[str | None]:
    exact = {normalise(t) for t in seen}
    out: list[str | None] = ["exact" if normalise(t) in exact else None for t in texts]
    rest = [i for i, o in enumerate(out) if o is None]
    if not rest or not seen:
        return out
    known = sorted(exact)
    known_sets = [shingles(t) for t in known]
    lsh = _lsh(threshold)
    for k, mh in enumerate(_minhashes(known_sets)):
        lsh.insert(k, mh)
    asked = [shingles(texts[i]) for i in rest]
    for i, s, mh in zip(rest, asked, _minhashes(asked)):
        if any(jaccard(s, known_sets[k]) >= threshold for k in lsh.query(mh)):
            out[i] = "near"
    return out


def counts(flags: list[str | None]) -> dict:
    return {"exact": sum(f == "exact" for f in flags), "near": sum(f == "near" for f in flags)}


def full_text(example: dict) -> str:
    """Everything an example says, prompt and answer(s), for exact duplicates of whole rows."""
    import json

    return json.dumps(example, sort_keys=True, ensure_ascii=False)


def report(examples: list[dict], where: list[str], threshold: float = NEAR) -> dict:
    """What ``check-data`` says of duplicates: ``duplicates`` rows equal to an earlier row once normalised (case,
    spaces, punctuation), ``near_duplicates`` further rows whose prompt is the same or nearly the same as an
    earlier row's, ``duplicate_groups`` the row numbers of each group of such prompts (as the file counts them:
    its line, record or row), ``duplicate_where`` the same as the file's own words."""
    seen, exact = set(), 0
    for ex in examples:
        key = normalise(full_text(ex))
        exact += key in seen
        seen.add(key)
    found = groups([prompt_text(ex) for ex in examples], threshold)
    number = [int(m.group()) if (m := re.search(r"\d+$", w)) else i + 1 for i, w in enumerate(where)]
    in_groups = sum(len(g) - 1 for g in found)
    return {"duplicates": exact, "near_duplicates": max(0, in_groups - exact),
            "duplicate_groups": [[number[i] for i in g] for g in found],
            "duplicate_where": [[where[i] for i in g] for g in found]}
