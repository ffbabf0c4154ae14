"""The rating results as they stand, computed once per change and shared: the Rate tab asks ``current(owner,
page, state, compute)`` and gets the results last computed for that owner while the database's counts
(``state``) have not moved. With several pages asking at once (three or more in the last five seconds) results
are recomputed at most a tenth of the time, and while one request computes them the others get the last ones,
so raters voting together do not keep a core busy while a job trains; a rater alone always sees their last vote
counted. ``unchanged(page, version)`` says whether a page already shows a version (then it is not sent again)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BUSY_PAGES = 3  # pages asking within ``WINDOW_S`` that make the machine busy
WINDOW_S = 5.0
BUSY_SHARE = 10  # when busy, results are at most 1 / BUSY_SHARE of the time old: computed again after 10x took


@dataclass(frozen=True)
class Computed:
    """Results computed for one owner, and when: recomputed when the database's counts move."""

    state: tuple  # the database's counts they were computed from
    value: Any  # the result tables and charts
    finished: float  # when
    took: float  # seconds it took
    version: int  # increases with each computation: a page that shows this one is not sent it again


class ResultsCache:
    def __init__(self):
        self._by_owner: dict[str | None, Computed] = {}
        self._computing = threading.Lock()
        self._lock = threading.Lock()
        self._asking: dict[str, float] = {}  # page -> when it last asked
        self._sent: dict[str, int] = {}  # page -> the version it was last sent
        self._versions = itertools.count(1)

    def current(self, owner: str | None, page: str, state: tuple, compute: Callable[[], Any]) -> tuple[int, Any]:
        """(version, results) for ``owner``: the kept ones while ``state`` is the same (or, on a busy machine,
        while they are fresh enough or another request is computing them), else ``compute()``'s."""
        now = time.time()
        with self._lock:
            self._asking = {k: t for k, t in self._asking.items() if now - t < WINDOW_S}
            self._asking[page] = now
            busy = len(self._asking) >= BUSY_PAGES
        cached = self._by_owner.get(owner)
        if cached and (cached.state == state or busy and now - cached.finished < BUSY_SHARE * cached.took):
            return cached.version, cached.value
        if cached and not self._computing.acquire(blocking=False):
            return cached.version, cached.value
        if not cached:
            self._computing.acquire()
        try:
            start = time.time()
            value = compute()
            self._by_owner[owner] = Computed(state, value, time.time(), time.time() - start, next(self._versions))
            return self._by_owner[owner].version, value
        finally:
            self._computing.release()

    def unchanged(self, page: str, version: int) -> bool:
        """Whether ``page`` was last sent this version (and remember that it has it now)."""
        with self._lock:
            same = self._sent.get(page) == version
            self._sent = {k: v for k, v in self._sent.items() if k in self._asking} | {page: version}
        return same
