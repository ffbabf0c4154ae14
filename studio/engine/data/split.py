"""The train / validation split, decided once and stored with the run.

Contract: ``make_split(path, n, val_size, seed, groups=...) -> Split``: seeded, sorted index lists and the
data file's SHA-256; each group of near-duplicate prompts on one side. The run directory keeps it as
``split.json``; evaluation reads the validation examples from it and refuses, in one line, when the data file
has changed since training (a re-derived split would silently be another one).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from studio.engine.errors import DataError


@dataclass
class Split:
    data_file: str
    data_sha256: str
    train: list[int]
    val: list[int]  # indices into data_file, or into val_file when the run has a separate validation file
    val_file: str = ""
    val_sha256: str = ""

    def save(self, run: Path) -> None:
        from studio.engine.runs import SPLIT
        from studio.engine.storage import write_atomic

        write_atomic(Path(run) / SPLIT, json.dumps(asdict(self)))

    @classmethod
    def load(cls, run: Path) -> Split | None:
        from studio.engine.runs import SPLIT

        path = Path(run) / SPLIT
        return cls(**json.loads(path.read_text())) if path.is_file() else None

    def check_unchanged(self, path: str | Path, val_path: str | Path = "") -> None:
        for file, digest in ((val_path, self.val_sha256) if self.val_file else (path, self.data_sha256),):
            if not Path(file).is_file() or file_sha256(file) != digest:
                raise DataError(f"{Path(file).name} has changed since this run trained, so its validation examples "
                                "are gone; evaluate on a file instead")


def split_indices(n: int, val_size: float, seed: int, groups: list[list[int]] | None = None
                  ) -> tuple[list[int], list[int]]:
    """Seeded (train, validation) indices. ``groups``: rows that must stay on one side (near-duplicate prompts,
    ``dedup.groups``): whole groups go to validation while they fit, so no prompt is held out while another
    wording of it trains. Without groups (or with none found) the split is the one every earlier run made."""
    grouped = {i for g in groups or [] for i in g}
    units = sorted([sorted(g) for g in groups or []] + [[i] for i in range(n) if i not in grouped])
    random.Random(seed).shuffle(units)
    n_val = 0 if val_size == 0 or n < 2 else min(n - 1, max(1, round(n * val_size)))
    val: list[int] = []
    for unit in units:
        if len(val) + len(unit) <= n_val:
            val += unit
    if n_val and not val:  # every group is larger than the validation split: rows are split one by one
        return split_indices(n, val_size, seed)
    held = set(val)
    return [i for i in range(n) if i not in held], sorted(val)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_split(path: str | Path, n: int, val_size: float, seed: int, val_path: str | Path = "",
               n_val: int = 0, groups: list[list[int]] | None = None) -> Split:
    """Seeded indices; with a separate validation file, all of ``path`` trains and all of ``val_path`` validates.
    ``groups``: rows kept on one side (``split_indices``)."""
    if val_path:
        return Split(Path(path).name, file_sha256(path), list(range(n)), list(range(n_val)), Path(val_path).name,
                     file_sha256(val_path))
    train, val = split_indices(n, val_size, seed, groups)
    return Split(Path(path).name, file_sha256(path), train, val)
