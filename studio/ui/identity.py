"""Who is asking: on a public deployment, the logged-in user, never anything the client chooses.

Contract: ``username(request)`` is the visitor's login or None (anonymous), from, in order: the Hugging
Face login on a Space (Gradio's OAuth session), Gradio's own password auth (``STUDIO_AUTH``), or, only
when the operator names it, a header set by a trusted reverse proxy (``STUDIO_TRUSTED_USER_HEADER``;
also how the security tests log two users in on loopback). ``owner_id(name)`` is the id that runs,
uploads, jobs and ratings are filed under. A session key or a Gradio session hash never grants access.
"""

from __future__ import annotations

from studio.settings import owner_id, settings  # noqa: F401  (owner_id: the id a login is filed under)


def _oauth_info(request) -> dict | None:
    """Gradio's OAuth session on a Space; None where no login middleware is installed."""
    try:
        session = request.session
        return session.get("oauth_info") if session is not None else None
    except (AssertionError, AttributeError, KeyError):  # no SessionMiddleware: nobody logged in that way
        return None


def _password_login(request) -> str | None:
    """Gradio's password login read from its cookie, for a request that reaches the studio before Gradio's own
    routes name the user (``ui/gateway.py``)."""
    from starlette.requests import HTTPConnection

    if not isinstance(request, HTTPConnection):  # a handler's gr.Request names its login itself
        return None
    app = request.scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not tokens or cookie_id is None:
        return None
    cookies = getattr(request, "cookies", None) or {}
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return tokens.get(token) if token else None


def username(request) -> str | None:
    if request is None:
        return None
    info = _oauth_info(request)
    if info and info.get("userinfo", {}).get("preferred_username"):
        return info["userinfo"]["preferred_username"]
    if getattr(request, "username", None):
        return request.username
    login = _password_login(request)
    if login:
        return login
    header = settings().trusted_user_header.strip()
    headers = getattr(request, "headers", None) or {}
    if header and headers.get(header.lower()):
        return headers.get(header.lower()).strip()[:64] or None
    return None


def visitor_of(request) -> tuple[str | None, str]:
    """(owner, session key) of a request on a public deployment: the login's id for both, or, anonymous, no owner
    and a key of the page's own (which owns nothing)."""
    import hashlib

    name = username(request)
    if name:
        return owner_id(name), owner_id(name)
    page = getattr(request, "session_hash", None) or "none"
    return None, "anon-" + hashlib.sha256(page.encode("utf-8", "replace")).hexdigest()[:32]


def oauth_token(request) -> str | None:
    """The visitor's own Hugging Face token from their login on a Space (write scope if the Space asks for it)."""
    return (_oauth_info(request) or {}).get("access_token")


def rater(typed: str | None, request) -> str:
    """Who rates, one rule for the Rate tab and a campaign's link: the login wherever there is one (with
    ``STUDIO_AUTH`` on one's own machine too: no one rates under another's typed name); else, on a public
    deployment, nobody (``StudioError``); else the name typed."""
    from studio.engine.errors import StudioError
    from studio.policy import policy

    name = username(request)
    if name:
        return name
    if policy().identity_from_login:
        raise StudioError("Log in to rate: your ratings are kept under your login.")
    if not (typed or "").strip():
        raise StudioError("Type your name first: every rating records its rater.")
    return typed.strip()[:100]
