"""The Rate tab's results, computed once per change: the same counts give the kept results; new counts compute
them again, except on a busy machine (several pages asking) while they are still fresh; a page already showing a
version is not sent it again."""

import threading

from studio.engine.judge.results_cache import ResultsCache


def counter():
    calls = []

    def compute():
        calls.append(1)
        return f"results #{len(calls)}"

    return compute, calls


def test_results_are_computed_once_per_change_of_the_counts():
    cache, (compute, calls) = ResultsCache(), counter()
    v1, r1 = cache.current(None, "page-a", (1, 0, 0), compute)
    assert (r1, len(calls)) == ("results #1", 1)
    assert cache.current(None, "page-a", (1, 0, 0), compute) == (v1, r1) and len(calls) == 1  # nothing moved
    v2, r2 = cache.current(None, "page-a", (2, 0, 0), compute)  # a vote came in: computed again
    assert v2 > v1 and r2 == "results #2"
    assert cache.current("alice", "page-a", (2, 0, 0), compute)[1] == "results #3"  # another owner: their own


def test_a_busy_machine_keeps_fresh_results_and_a_page_is_not_sent_what_it_shows():
    cache, (compute, calls) = ResultsCache(), counter()
    for page in ("p1", "p2", "p3"):  # three raters' pages asking at once: busy
        version, _ = cache.current(None, page, (1,), compute)
    assert cache.current(None, "p1", (2,), compute)[1] == "results #1"  # fresh enough: the vote shows a bit later
    assert len(calls) == 1
    assert not cache.unchanged("p1", version) and cache.unchanged("p1", version)  # sent once, then skipped


def test_while_one_request_computes_the_others_get_the_last_results():
    cache, release, started = ResultsCache(), threading.Event(), threading.Event()
    cache.current(None, "p", (1,), lambda: "old")

    def slow():
        started.set()
        release.wait(5)
        return "new"

    worker = threading.Thread(target=lambda: cache.current(None, "p", (2,), slow))
    worker.start()
    assert started.wait(5)
    assert cache.current(None, "q", (2,), lambda: "never") [1] == "old"  # not a second computation
    release.set()
    worker.join(5)
    assert cache.current(None, "p", (2,), lambda: "never")[1] == "new"
