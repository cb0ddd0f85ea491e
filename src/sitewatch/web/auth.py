"""Authentication and authorisation: sessions with CSRF protection, API tokens, roles, rate limits.

Browsers log in with a password and get two cookies: ``sitewatch_session`` (HttpOnly,
SameSite=Strict, the session secret) and ``sitewatch_csrf`` (readable by the page's script). Every
unsafe request made with the session cookie must repeat the CSRF token in the ``X-CSRF-Token``
header (double submit, checked against the value stored with the session). Scripts send
``Authorization: Bearer <token>`` instead and need no CSRF token. Reads need the ``viewer`` role,
writes ``analyst``, user management ``admin``. Failed logins are limited per user name and client
address; past the limit the answer is 429 with ``Retry-After``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..errors import AuthError
from .users import User, has_role

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "LoginLimiter",
    "Principal",
    "authenticate",
    "require",
]

SESSION_COOKIE = "sitewatch_session"
CSRF_COOKIE = "sitewatch_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """Who makes a request, and how they proved it."""

    user: User
    via: Literal["session", "token"]
    csrf: str | None = None

    @property
    def username(self) -> str:
        """The user name recorded in the catalog history."""
        return self.user.username


class LoginLimiter:
    """Failed-login counter per key (user name + client address) over a sliding window."""

    def __init__(self, attempts: int = 5, window_s: float = 60.0) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        fails = self._fails.setdefault(key, deque())
        while fails and fails[0] <= now - self.window_s:
            fails.popleft()
        return fails

    def retry_after(self, key: str) -> int | None:
        """Seconds to wait before another attempt is allowed, or None when allowed now."""
        now = time.monotonic()
        with self._lock:
            fails = self._recent(key, now)
            if len(fails) < self.attempts:
                return None
            return max(1, int(fails[0] + self.window_s - now + 0.999))

    def failed(self, key: str) -> None:
        """Count a failed attempt."""
        with self._lock:
            self._recent(key, time.monotonic()).append(time.monotonic())

    def succeeded(self, key: str) -> None:
        """Forget the failures of a key after a successful login."""
        with self._lock:
            self._fails.pop(key, None)


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def _credentials(request: Request) -> tuple[Literal["session", "token"], str]:
    """How the request says who it is: ("token", secret) or ("session", cookie); 401 if neither."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _unauthorised("use 'Authorization: Bearer <token>'")
        return "token", secret.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise _unauthorised("log in first (POST /api/auth/login) or send a Bearer token")
    return "session", cookie


def _checked(request: Request, principal: Principal) -> Principal:
    """The principal, after the CSRF check that unsafe requests made with a session need."""
    if principal.via == "session" and request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not secrets.compare_digest(sent, principal.csrf or ""):
            raise HTTPException(
                403, detail=f"missing or wrong {CSRF_HEADER} header (reload the page)"
            )
    return principal


def authenticate(request: Request) -> Principal:
    """The principal of a request (Bearer token or session cookie); 401 when there is none."""
    from .deps import app_context

    users = app_context(request).users
    via, secret = _credentials(request)
    try:
        if via == "token":
            principal = Principal(users.user_for_token(secret), "token")
        else:
            user, csrf = users.session(secret)
            principal = Principal(user, "session", csrf)
    except AuthError as exc:
        raise _unauthorised(str(exc)) from None
    return _checked(request, principal)


def _remembered(request: Request) -> Principal | None:
    """The principal from the user store's recent lookups, without database access; or None."""
    from .deps import app_context

    users = app_context(request).users
    via, secret = _credentials(request)
    if via == "token":
        user = users.cached_token_user(secret)
        return None if user is None else _checked(request, Principal(user, "token"))
    hit = users.cached_session(secret)
    return None if hit is None else _checked(request, Principal(hit[0], "session", hit[1]))


def require(role: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the request's principal, who must have at least ``role``.

    A recently seen token or session is answered on the event loop; otherwise the database lookup
    runs in a worker thread.
    """

    async def dependency(request: Request) -> Principal:
        principal = _remembered(request)
        if principal is None:
            principal = await run_in_threadpool(authenticate, request)
        if not has_role(principal.user.role, role):
            raise AuthError(
                f"user {principal.username!r} has the role {principal.user.role!r}; "
                f"this needs {role!r} (an admin can change it with `sitewatch users add`)"
            )
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency
