"""Whose ratings a visitor works with, decided once for the Rate tab, the Campaigns tab and the model card: on
one's own machine everything; on a public deployment (``policy().scoped``) only the items of their own runs'
comparisons, the votes between their own runs and the base, the 1-5 ratings of their own items, their own
campaigns, and any other system under a stable pseudonym. No one sees another visitor's prompts or run names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from studio.engine import runs
from studio.engine.judge import pool
from studio.policy import policy


@dataclass(frozen=True)
class Scope:
    owner: str | None  # the visitor's id (their runs' owner); None: anonymous, or one's own machine
    scoped: bool  # policy().scoped when it was made

    @classmethod
    def of(cls, owner: str | None) -> Scope:
        return cls(owner, policy().scoped)

    @cached_property
    def systems(self) -> set[str]:
        """The systems this visitor may see by name: the base and their own trained runs."""
        return {"base", *runs.trained_runs(self.owner)}

    def items(self) -> Callable[[dict], bool] | None:
        """Which pool items this visitor works with (None: all of them)."""
        if not self.scoped:
            return None
        mine = self.systems - {"base"}
        return lambda item: pool.source_run(item) in mine

    def votes(self, votes: list[dict]) -> list[dict]:
        """The votes this visitor's results and cards count: those between their own runs and the base."""
        if not self.scoped:
            return votes
        return [v for v in votes if {v["system_a"], v["system_b"]} <= self.systems]

    def likert(self, db) -> list[dict]:
        """The 1-5 ratings of this visitor's own items (a rating of "base" belongs to the comparison it came from,
        never to everyone's "base")."""
        if not self.scoped:
            return db.likert()
        keep = self.items()
        mine = {i["id"] for i in db.items() if keep(i)}
        return [r for r in db.likert() if r["item_id"] in mine]

    def name(self, system: str) -> str:
        """A system as this visitor sees it: its name if it is theirs (or the base), else a pseudonym."""
        return system if not self.scoped or system in self.systems else pool.pseudonym(system)

    def campaigns(self, db, login: str | None) -> list[dict]:
        """The campaigns this visitor sees: all of them locally; on a public deployment those made under their
        login (``login``: the name a campaign is kept under)."""
        from studio.engine.judge import campaign

        return campaign.campaigns(db, login if policy().identity_from_login else None, everyone=not self.scoped)
