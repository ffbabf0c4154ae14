"""The door in front of Gradio's own routes (studio/ui/gateway.py), driven as an ASGI app: who may store an
upload and how much, how the queue's waiting places are shared, and what Gradio keeps per session. The same
rules against the running public app are in tests/test_public_security.py."""

import asyncio
import gc
import json
import tracemalloc
from types import SimpleNamespace

import pytest

from studio.engine import budget
from studio.ui import gateway


class Event(SimpleNamespace):
    pass


class FakeGradio:
    """The inner app: stores what an upload sends, and puts a joined event in a one-worker queue."""

    def __init__(self):
        self.stored = 0
        self.line: list[Event] = []
        queue = SimpleNamespace(event_queue_per_concurrency_id={"check": SimpleNamespace(queue=self.line)},
                                event_ids_to_events={})
        self.blocks = SimpleNamespace(_queue=queue)
        self.tokens, self.cookie_id = {}, "c"
        self.n = 0
        self.seen: list[tuple[str, bytes]] = []  # (path, body) of every request, as Gradio got it
        self.answer: bytes | None = None  # what an upload answers (default: "[]")

    def get_blocks(self):
        return self.blocks

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                await send({"type": "http.response.start", "status": 400, "headers": []})
                await send({"type": "http.response.body", "body": b"cut off"})
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = self.answer or b"[]"
        self.seen.append((scope["path"], body))
        if scope["path"].endswith("/upload") or scope["method"] == "GET":
            self.stored += len(body)
        else:
            self.n += 1
            event = Event(_id=f"e{self.n}", session_hash=json.loads(body)["session_hash"], concurrency_id="check")
            self.line.append(event)
            self.blocks._queue.event_ids_to_events[event._id] = event
            answer = json.dumps({"event_id": event._id}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def public(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    monkeypatch.setenv("STUDIO_TRUSTED_USER_HEADER", "X-User")
    inner = FakeGradio()
    return gateway.Gateway(inner), inner, tmp_path


def request(door, path, body: bytes, user=None, chunks=None, declared=None, method="POST"):
    """One request through the door (a POST unless said); (status, answer)."""
    headers = [(b"content-length", str(len(body) if declared is None else declared).encode())]
    if user:
        headers.append((b"x-user", user.encode()))
    scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b"",
             "app": door.app}
    parts = list(chunks or [body])
    sent: list[dict] = []

    async def receive():
        if not parts:
            return {"type": "http.disconnect"}
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    async def send(message):
        sent.append(message)

    asyncio.run(door(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def audit(home) -> list[dict]:
    return [json.loads(line) for line in (home / "audit" / "gate.jsonl").read_text().splitlines()]


def test_an_anonymous_upload_is_refused_before_a_byte_is_stored(public):
    door, inner, home = public
    status, answer = request(door, "/gradio_api/upload", b"x" * 1000)
    assert status == 403 and answer.decode().startswith("Log in to upload")  # the page shows it as it is
    assert inner.stored == 0
    assert audit(home)[-1] | {"t": 0} == {"t": 0, "action": "upload-refused", "owner": None, "why": "anonymous"}


def test_a_logged_in_upload_counts_against_the_quota(public, monkeypatch):
    door, inner, home = public
    monkeypatch.setattr(budget, "USER_QUOTA_MB", 1.0)
    assert request(door, "/gradio_api/upload", b"x" * 600_000, user="alice")[0] == 200
    assert inner.stored == 600_000 and audit(home)[-1]["bytes"] == 600_000
    # what alice uploaded a moment ago still counts (it sits in Gradio's cache): a second one does not fit
    status, answer = request(door, "/gradio_api/upload", b"x" * 600_000, user="alice")
    assert status == 413 and "1 MB" in answer.decode() and inner.stored == 600_000
    assert request(door, "/gradio_api/upload", b"x" * 600_000, user="bob")[0] == 200  # bob has his own quota
    # declared small, sent large: cut off where it stops fitting
    status, _ = request(door, "/gradio_api/upload", b"", user="carol", declared=100,
                        chunks=[b"x" * 100, b"x" * 2**20])
    assert status == 400 and inner.stored == 1_200_000  # Gradio answers a cut-off upload with an error


def test_uploads_are_rate_limited_per_visitor(public, monkeypatch):
    door, inner, _ = public
    monkeypatch.setattr(gateway, "UPLOADS_PER_MINUTE", 3)
    codes = [request(door, "/gradio_api/upload", b"x", user="alice")[0] for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert request(door, "/gradio_api/upload", b"x", user="bob")[0] == 200


def join(door, session_hash, user=None):
    body = json.dumps({"data": [], "fn_index": 0, "session_hash": session_hash}).encode()
    return request(door, "/gradio_api/queue/join", body, user=user)[0]


def test_anonymous_visitors_together_never_fill_the_queue(public, monkeypatch):
    door, inner, home = public
    monkeypatch.setattr(gateway, "ANON_SHARE", 4)
    monkeypatch.setattr(gateway, "PER_VISITOR", 3)
    codes = [join(door, f"page{i}") for i in range(10)]  # ten pages, as a flood opens them
    assert codes == [200] * 4 + [503] * 6
    assert [join(door, "alice-page", "alice") for _ in range(4)] == [200, 200, 200, 429]  # her own share
    assert join(door, "bob-page", "bob") == 200
    refused = [line for line in audit(home) if line["action"] == "queue-refused"]
    assert len(refused) == 7 and {line["why"] for line in refused} == {"share", "visitor"}
    assert all(line["key"].startswith("anon-") for line in refused if line["owner"] is None)


def test_a_logged_in_visitors_event_goes_ahead_of_anonymous_ones(public):
    door, inner, _ = public
    for i in range(3):
        join(door, f"page{i}")
    join(door, "alice-page", "alice")
    join(door, "bob-page", "bob")
    assert [e.session_hash for e in inner.line] == ["alice-page", "bob-page", "page0", "page1", "page2"]


def test_locally_every_request_passes_unchanged(monkeypatch, tmp_path):
    monkeypatch.delenv("STUDIO_PUBLIC", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    inner = FakeGradio()
    door = gateway.Gateway(inner)
    assert request(door, "/gradio_api/upload", b"x" * 1000)[0] == 200 and inner.stored == 1000
    assert [join(door, f"p{i}") for i in range(20)] == [200] * 20


@pytest.mark.integration
def test_a_session_keeps_its_own_values_not_a_copy_of_the_page(monkeypatch, tmp_path):
    """Gradio's per-session state copied every component's configuration (~650 KB a session on this page)."""
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    from gradio import state_holder

    from studio.ui.app import build_app

    current = state_holder.SessionState  # an app launched earlier in this process made it lean already
    full = current.__mro__[1] if getattr(current, "__studio_lean__", False) else current
    monkeypatch.setattr(state_holder, "SessionState", full)  # Gradio's own; put back as it was after this test
    gateway.lean_sessions()
    lean = state_holder.SessionState
    assert lean is not full and lean.__studio_lean__
    demo = build_app()

    def per_session(kind) -> float:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        kept = [kind(demo) for _ in range(10)]
        gc.collect()
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
        assert len(kept) == 10
        return grown / 10 / 1024

    assert per_session(full) > 200  # what it was: measured, so the comparison below means something
    assert per_session(lean) < 50
    session = lean(demo)
    some = next(k for k, b in demo.blocks.items() if not b.stateful)
    session[some] = demo.blocks[some]  # what Gradio does with an updated component: kept for this session only
    assert session.blocks_config.blocks.maps[0] == {some: demo.blocks[some]}
    assert any(c["id"] == some for c in session.components)  # a deep link's snapshot is still made on demand


def test_no_server_path_reaches_a_visitor_and_files_are_named_by_their_place_in_the_cache(public, monkeypatch):
    """Gradio names an upload, a file output and its link by the server's absolute path."""
    door, inner, home = public
    cache = home / "gradio"
    (cache / "abc123").mkdir(parents=True)
    (cache / "abc123" / "notes.txt").write_text("hi")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    inner.answer = json.dumps([str(cache / "abc123" / "notes.txt")]).encode()
    status, answer = request(door, "/gradio_api/upload", b"hi", user="alice")
    assert status == 200 and json.loads(answer) == ["abc123/notes.txt"] and str(home) not in answer.decode()
    # the same file named by its place: in an event's inputs, and in Gradio's file route
    sent = {"data": [{"path": "abc123/notes.txt", "meta": {"_type": "gradio.FileData"}}, {"path": "not/a/file"}],
            "fn_index": 0, "session_hash": "alice-page"}
    request(door, "/gradio_api/queue/join", json.dumps(sent).encode(), user="alice")
    got = json.loads(inner.seen[-1][1])["data"]
    assert got[0]["path"] == str(cache / "abc123" / "notes.txt") and got[1] == {"path": "not/a/file"}
    request(door, "/gradio_api/file=abc123/notes.txt", b"", method="GET")
    assert inner.seen[-1][0] == f"/gradio_api/file={cache}/abc123/notes.txt"
    for outside in ("../../etc/passwd", "/etc/passwd", "abc123/../../x"):  # never a way out of the cache
        request(door, f"/gradio_api/file={outside}", b"", method="GET")
        assert inner.seen[-1][0] == f"/gradio_api/file={outside}"
