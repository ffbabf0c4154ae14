"""The door in front of Gradio's own routes, and what Gradio keeps per session.

``ui/door.py`` puts every event handler behind ``engine/gate.py``; but Gradio answers some requests before
any handler runs: it stores an upload (``/gradio_api/upload``), it puts an event in its one queue
(``/gradio_api/queue/join`` and the ``/call`` and ``/run`` routes) and it keeps state for every session
hash it meets. On a public deployment ``Gateway`` (an ASGI middleware, given to the app Gradio builds)
stands in front of those routes with the same identity the handlers see (``ui/identity.py``):

- **uploads**: anonymous visitors store nothing (refused before a byte is written); a logged-in visitor's
  upload counts against their quota (``engine/budget.py``: what they hold plus what they uploaded through
  this route in the last ``STUDIO_TEMP_AGE_S``) and is refused past it, the body cut off if it grows past
  what it declared; at most ``UPLOADS_PER_MINUTE``; every upload and refusal has an audit line.
- **the queue**: each visitor may have ``PER_VISITOR`` events waiting, anonymous visitors together
  ``ANON_SHARE`` (so they can never fill it: ``QUEUE_SIZE`` in all), and a logged-in visitor's event goes
  ahead of anonymous ones waiting for the same worker. A refusal is one sentence (HTTP 429 / 503).
- **paths**: Gradio names files by the server's absolute path (an upload's answer, a file output's path and
  link); on their way out the cache folder is taken out of every JSON and event-stream answer, and a file named
  by its place in the cache (in an event's inputs, in ``/gradio_api/file=``) gets its full path back on the way
  in, so no server path reaches a visitor.
- **sessions**: ``lean_sessions()`` makes Gradio's per-session state hold the session's own values only (not a
  copy of every component's configuration, ~650 KB a session on this page); ``SESSIONS`` bounds how many
  are kept (Gradio's ``state_session_capacity``). ``bench/attacks.py --sessions`` measures the cost.

Locally (no ``STUDIO_PUBLIC``) the middleware passes every request through unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import ChainMap, OrderedDict, deque
from types import SimpleNamespace

import anyio

from studio.engine import budget, gate
from studio.policy import policy
from studio.settings import settings
from studio.ui import identity

QUEUE_SIZE = settings().queue_size  # events waiting, everyone together
ANON_SHARE = settings().anon_queue_share  # of those, anonymous visitors together
PER_VISITOR = settings().queue_per_visitor  # of those, one visitor's
SESSIONS = settings().sessions  # Gradio sessions kept in memory (oldest go first)
UPLOADS_PER_MINUTE = settings().uploads_per_minute
MAX_BODY = 4 * 2**20  # an event's own body (its inputs; files come through the upload route)
JOIN_ROUTES = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")


def _refuse(status: int, sentence: str, plain: bool = False):
    """A refusal in one sentence: as Gradio's own routes answer (JSON ``detail`` for the queue; plain text for an
    upload, which the page shows as it is)."""
    body = sentence.encode() if plain else json.dumps({"detail": sentence}).encode()
    kind = b"text/plain; charset=utf-8" if plain else b"application/json"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]

    async def respond(send):
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    return respond


class Gateway:
    """ASGI middleware: uploads and queue joins pass the gate's identity, quota and shares (public mode)."""

    def __init__(self, app, window_s: float = 3600.0):
        self.app = app
        self.window_s = window_s  # how long Gradio keeps an upload in its cache (launch.TEMP_AGE_S)
        self.keys: OrderedDict[str, str] = OrderedDict()  # Gradio session hash -> the visitor's key (bounded)
        self.uploaded: dict[str, deque] = {}  # owner -> (time, bytes) of uploads through the route

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not policy().guards_routes:
            return await self.app(scope, receive, send)
        roots = cache_roots()
        if roots:  # no server path in any answer: Gradio's cache is named by the place in it
            scope, send = _by_place(scope, roots), _hiding(send, roots)
        if scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.endswith("/gradio_api/upload"):
            return await self.upload(scope, receive, send)
        if any(route in path for route in JOIN_ROUTES):
            return await self.join(scope, receive, send)
        return await self.app(scope, receive, send)

    # -- who -----------------------------------------------------------------------------------------------------
    @staticmethod
    def _owner(scope) -> str | None:
        from starlette.requests import Request

        name = identity.username(Request(scope))
        return identity.owner_id(name) if name else None

    # -- uploads -------------------------------------------------------------------------------------------------
    def recent_mb(self, owner: str) -> float:
        """What ``owner`` uploaded through the route within Gradio's cache lifetime (it may still sit there)."""
        kept = self.uploaded.get(owner, deque())
        while kept and time.time() - kept[0][0] > self.window_s:
            kept.popleft()
        return sum(n for _, n in kept) / 2**20

    async def upload(self, scope, receive, send):
        owner = self._owner(scope)
        if owner is None:
            gate._audit({"t": round(time.time(), 3), "action": "upload-refused", "owner": None,
                         "why": "anonymous"})
            return await _refuse(403, "Log in to upload a file: visitors who are not logged in can try the "
                                      "samples.", plain=True)(send)
        recent = self.uploaded.setdefault(owner, deque())
        self.recent_mb(owner)
        if sum(1 for t, _ in recent if time.time() - t < 60) >= UPLOADS_PER_MINUTE:
            gate._audit({"t": round(time.time(), 3), "action": "upload-refused", "owner": owner, "why": "rate"})
            return await _refuse(429, f"at most {UPLOADS_PER_MINUTE} uploads a minute: wait a moment", plain=True)(send)
        try:
            declared = int(dict(scope.get("headers", [])).get(b"content-length", b"0") or 0)
        except ValueError:
            return await _refuse(400, "a Content-Length that is not a number", plain=True)(send)
        held = await anyio.to_thread.run_sync(budget.usage_mb, owner)  # a walk of their folders: off the loop
        left = (budget.USER_QUOTA_MB - held - self.recent_mb(owner)) * 2**20
        if declared > left:
            gate._audit({"t": round(time.time(), 3), "action": "upload-refused", "owner": owner, "why": "quota",
                         "bytes": declared})
            return await _refuse(413, f"this upload ({declared / 2**20:,.1f} MB) does not fit in what is left of "
                                      f"your {budget.USER_QUOTA_MB:,.0f} MB on this deployment "
                                      f"({max(left, 0) / 2**20:,.1f} MB): delete some runs first", plain=True)(send)
        seen = 0
        limit = min(left, declared) if declared else left

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # more than it declared, or than fits: cut off (Gradio drops the partial file)
                    return {"type": "http.disconnect"}
            return message

        async def answered(message):  # counted and audited before the visitor hears back (a next upload sees it)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                recent.append((time.time(), seen))
                gate._audit({"t": round(time.time(), 3), "action": "upload-route", "owner": owner, "bytes": seen})
            await send(message)

        await self.app(scope, counted, answered)

    # -- the queue -----------------------------------------------------------------------------------------------
    def _key(self, scope, session_hash: str | None) -> tuple[str, bool]:
        owner = self._owner(scope)
        if owner:
            return owner, False
        page = session_hash or "none"
        return "anon-" + hashlib.sha256(page.encode("utf-8", "replace")).hexdigest()[:32], True

    def waiting(self, scope) -> list:
        """Events waiting in Gradio's queue (not yet running), with the visitor key each was joined under."""
        try:
            queue = scope["app"].get_blocks()._queue
            return [(e, self.keys.get(e.session_hash, "anon-?")) for q in queue.event_queue_per_concurrency_id.values()
                    for e in q.queue]
        except (AttributeError, KeyError):
            return []

    async def join(self, scope, receive, send):
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                return await _refuse(413, "this request is too large")(send)
        try:
            parsed = json.loads(body or b"{}")
            session_hash = parsed.get("session_hash")
            if _absolute(parsed, cache_roots()):  # files named by their place in the cache: Gradio's own paths
                body = bytearray(json.dumps(parsed).encode())
        except (ValueError, AttributeError):
            session_hash = None
        key, anonymous = self._key(scope, session_hash if isinstance(session_hash, str) else None)
        waiting = self.waiting(scope)
        mine = sum(1 for _, k in waiting if k == key)
        anon = sum(1 for _, k in waiting if k.startswith("anon-"))
        why = None
        if mine >= PER_VISITOR:
            why = (429, f"you have {mine} requests waiting already: wait for them to finish")
        elif anonymous and anon >= ANON_SHARE:
            why = (503, "this deployment is busy with visitors who are not logged in: try again in a moment, or "
                        "log in")
        if why:
            gate._audit({"t": round(time.time(), 3), "action": "queue-refused", "owner": None if anonymous else key,
                         "key": key if anonymous else None, "why": "share" if why[0] == 503 else "visitor"})
            return await _refuse(*why)(send)
        if isinstance(session_hash, str):
            self.keys[session_hash] = key
            self.keys.move_to_end(session_hash)
            while len(self.keys) > max(SESSIONS, QUEUE_SIZE) * 2:
                self.keys.popitem(last=False)
        replayed = False

        async def again():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        answer = bytearray()

        async def watch(message):
            if message["type"] == "http.response.body":
                answer.extend(message.get("body", b""))
                if not message.get("more_body") and not anonymous:
                    self._ahead(scope, bytes(answer))
            await send(message)

        await self.app(scope, again, watch)

    def _ahead(self, scope, answer: bytes) -> None:
        """A logged-in visitor's new event goes before the anonymous ones waiting for the same worker."""
        try:
            event_id = json.loads(answer).get("event_id")
            queue = scope["app"].get_blocks()._queue
            event = queue.event_ids_to_events.get(event_id)
            line = queue.event_queue_per_concurrency_id[event.concurrency_id].queue
        except (ValueError, AttributeError, KeyError, TypeError):
            return
        if event not in line:
            return
        line.remove(event)
        at = next((i for i, e in enumerate(line) if self.keys.get(e.session_hash, "anon-?").startswith("anon-")),
                  len(line))
        line.insert(at, event)


# -- no server path in any answer -----------------------------------------------------------------------------
def cache_roots() -> list[str]:
    """Gradio's cache folder (where uploads and handed-out downloads live), as written and as resolved, each
    ending in ``/``: what answers name files under, and what is taken out of them."""
    root = os.environ.get("GRADIO_TEMP_DIR", "")
    if not root:
        return []
    return sorted({root.rstrip("/") + "/", os.path.realpath(root).rstrip("/") + "/"}, key=len, reverse=True)


def _hiding(send, roots: list[str]):
    """``send`` with Gradio's cache folder taken out of every JSON and event-stream answer (an upload's paths, a
    file output's path and link): a file is named by its place in the cache."""
    prefixes = [r.encode() for r in roots]
    textual = {"on": False}

    async def hidden(message):
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            textual["on"] = kind.startswith((b"application/json", b"text/event-stream"))
            if textual["on"]:
                message = {**message, "headers": [(k, v) for k, v in headers if k.lower() != b"content-length"]}
        elif message["type"] == "http.response.body" and textual["on"]:
            body = message.get("body", b"")
            for prefix in prefixes:
                body = body.replace(prefix, b"")
            message = {**message, "body": body}
        await send(message)
    return hidden


def _in_cache(place: str, roots: list[str]) -> str | None:
    """The cache's own path of a file named by its place in the cache, or None (absolute, a URL, outside it)."""
    if not place or place.startswith("/") or "://" in place:
        return None
    for root in roots:
        full = os.path.realpath(root + place)
        if full.startswith(os.path.realpath(root) + os.sep):
            return root + place
    return None


def _by_place(scope, roots: list[str]):
    """A request for ``/gradio_api/file=<place in the cache>`` as Gradio's file route expects it."""
    from urllib.parse import quote

    path = scope.get("path", "")
    at = path.find("/gradio_api/file=")
    if at < 0:
        return scope
    full = _in_cache(path[at + len("/gradio_api/file="):], roots)
    if full is None:
        return scope
    path = path[:at] + "/gradio_api/file=" + full
    return {**scope, "path": path, "raw_path": quote(path).encode()}


def _absolute(data, roots: list[str]) -> bool:
    """Files an event names by their place in the cache (``{"path": ...}``) get Gradio's own path back; whether
    any did."""
    changed = False
    if isinstance(data, dict):
        place = data.get("path")
        a_file = isinstance(data.get("meta"), dict) and data["meta"].get("_type") == "gradio.FileData" or \
            "orig_name" in data or "url" in data
        full = _in_cache(place, roots) if a_file and isinstance(place, str) else None
        if full is not None and os.path.exists(full):
            data["path"], changed = full, True
        for value in data.values():
            changed = _absolute(value, roots) or changed
    elif isinstance(data, list):
        for value in data:
            changed = _absolute(value, roots) or changed
    return changed


# -- what Gradio keeps per session -----------------------------------------------------------------------------
class _Sink(dict):
    """A map that keeps nothing written to it."""

    def __setitem__(self, key, value):
        pass


def lean_sessions() -> None:
    """Gradio's per-session state without the copy of every component's configuration it makes up front (used
    only to rebuild a page from a deep link, which this app does not offer): a session then costs its own values
    and two small maps. Idempotent; a Gradio whose session state no longer looks like this keeps its own."""
    from gradio import state_holder

    if getattr(state_holder.SessionState, "__studio_lean__", False):
        return
    full = state_holder.SessionState

    class LeanSession(full):
        __studio_lean__ = True

        def __init__(self, blocks):
            # the comprehension that copies every block's configuration finds none to copy
            nothing = SimpleNamespace(default_config=blocks.default_config, blocks={})
            try:
                super().__init__(nothing)
            except AttributeError:  # a Gradio that reads more of the app here: its own session state
                super().__init__(blocks)
            self._app_blocks = blocks.blocks
            # the session's own components and events over the app's: what it changes, not a copy of the rest
            shared = blocks.default_config
            self.blocks_config.blocks = ChainMap({}, shared.blocks)
            self.blocks_config.fns = ChainMap({}, shared.fns)

        def __setitem__(self, key, value):
            kept, self.config_values = self.config_values, _Sink()
            try:
                super().__setitem__(key, value)
            finally:
                self.config_values = kept

        def _update_config(self, key):  # kept for deep links only: made when one is asked for
            pass

        def _update_value_in_config(self, key, value):
            pass

        @property
        def components(self):  # a deep link's snapshot: every block's configuration as it is now
            for k, v in self.blocks_config.blocks.items():
                if k in self._app_blocks:
                    self.config_values[k] = self.blocks_config.config_for_block(k, [], v)
            return full.components.fget(self)

    state_holder.SessionState = LeanSession
