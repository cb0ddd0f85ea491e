"""Users, roles, API tokens and browser sessions, stored in the catalog database.

Passwords are hashed with argon2id (argon2-cffi); API tokens and session ids are random 256-bit
secrets of which only the SHA-256 digest is stored, so a copy of the database lets nobody log in.
Roles are ordered: a ``viewer`` reads, an ``analyst`` also writes, an ``admin`` also manages users.

A store made with ``cache_s > 0`` (the web app's) remembers successful token and session lookups
for that many seconds, so a burst of requests with one token costs one database read. Every change
made through the same store (removing a user, a new password, revoking a token, logging out)
forgets them at once; changes made by another process (``sitewatch users ...``) take effect within
``cache_s``. Expiry is checked on every request either way.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from ..catalog import schema as t
from ..catalog.models import utcnow
from ..catalog.store import Catalog
from ..errors import AuthError, DuplicateError, InputError, NotFound

__all__ = [
    "ROLES",
    "ApiToken",
    "Role",
    "User",
    "UserStore",
    "has_role",
]

log = logging.getLogger(__name__)

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
_RANK = {r: i for i, r in enumerate(ROLES)}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_MIN_PASSWORD = 8
TOKEN_PREFIX = "swt_"  # noqa: S105 - a public prefix, not a secret
_CACHE_ENTRIES = 4096


def has_role(role: str, needed: str) -> bool:
    """Whether ``role`` is at least ``needed`` (viewer < analyst < admin)."""
    return _RANK.get(role, -1) >= _RANK[needed]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    """A person or script allowed into the web app."""

    username: str
    role: Role
    created_at: datetime | None = None
    created_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``sitewatch users list --json``)."""
        return {
            "username": self.username,
            "role": self.role,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class ApiToken:
    """An API token's public part (the secret itself is shown once, when it is made)."""

    id: str
    username: str
    name: str
    created_at: datetime
    expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def _check_role(role: str) -> Role:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def _check_password(password: str) -> None:
    if len(password) < _MIN_PASSWORD:
        raise InputError(
            f"the password has {len(password)} characters; use at least {_MIN_PASSWORD}"
        )


@dataclass(frozen=True)
class _Lookup:
    """A remembered token or session lookup."""

    user: User
    csrf: str | None
    expires_at: datetime | None
    until: float  # time.monotonic() after which the database is asked again


class UserStore:
    """Read and write users, tokens and sessions in the catalog database."""

    def __init__(
        self, engine: Engine, *, hasher: PasswordHasher | None = None, cache_s: float = 0.0
    ) -> None:
        self._engine = engine
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None
        self._cache_s = cache_s
        self._cache: OrderedDict[str, _Lookup] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def for_catalog(
        cls, catalog: Catalog, *, hasher: PasswordHasher | None = None, cache_s: float = 0.0
    ) -> UserStore:
        """The user store of an open catalog (same database, same connection pool)."""
        engine: Engine = catalog.engine
        return cls(engine, hasher=hasher, cache_s=cache_s)

    # -- lookup cache ------------------------------------------------------------------------

    def _remembered(self, key: str) -> _Lookup | None:
        if self._cache_s <= 0:
            return None
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is None or time.monotonic() > hit.until:
            return None
        if hit.expires_at is not None and hit.expires_at < utcnow():
            return None  # the database lookup reports the expiry
        return hit

    def _remember(
        self, key: str, user: User, csrf: str | None, expires_at: datetime | None
    ) -> None:
        if self._cache_s <= 0:
            return
        entry = _Lookup(user, csrf, expires_at, time.monotonic() + self._cache_s)
        with self._cache_lock:
            self._cache[key] = entry
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)

    def forget_lookups(self) -> None:
        """Drop every remembered token and session lookup (after a change to users or tokens)."""
        with self._cache_lock:
            self._cache.clear()

    def cached_token_user(self, secret: str) -> User | None:
        """The owner of an API token if a recent lookup is remembered (no database access)."""
        hit = self._remembered("t" + _digest(secret))
        return hit.user if hit is not None else None

    def cached_session(self, secret: str) -> tuple[User, str] | None:
        """The user and CSRF token of a session if a recent lookup is remembered (no database)."""
        hit = self._remembered("s" + _digest(secret))
        return (hit.user, hit.csrf or "") if hit is not None else None

    # -- users -------------------------------------------------------------------------------

    def add(self, username: str, password: str, role: str = "viewer", *, by: str = "") -> User:
        """Create a user; raises :class:`DuplicateError` if the name is taken."""
        if not _NAME_RE.match(username):
            raise InputError(
                f"user name {username!r} is not allowed: use 1-64 lower-case letters, digits, "
                "'.', '_', '@' or '-', starting with a letter or digit"
            )
        checked = _check_role(role)
        _check_password(password)
        now = utcnow()
        with self._engine.begin() as conn:
            if conn.execute(
                sa.select(t.users.c.username).where(t.users.c.username == username)
            ).first():
                raise DuplicateError(
                    f"user {username!r} already exists; remove it first or choose another name"
                )
            conn.execute(
                t.users.insert(),
                {
                    "username": username,
                    "role": checked,
                    "password_hash": self._hasher.hash(password),
                    "created_at": now,
                    "created_by": by,
                },
            )
        log.info("user %s (%s) added by %s", username, checked, by or "?")
        return User(username, checked, now, by)

    def get(self, username: str) -> User:
        """The user called ``username``; raises :class:`NotFound`."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.username == username)).first()
        if row is None:
            raise NotFound(f"no user {username!r}; `sitewatch users list` shows them")
        return self._user(row._mapping)

    def all(self) -> list[User]:
        """Every user, by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(t.users).order_by(t.users.c.username)).all()
        return [self._user(r._mapping) for r in rows]

    def remove(self, username: str) -> None:
        """Delete a user with its tokens and sessions."""
        self.get(username)
        with self._engine.begin() as conn:
            conn.execute(t.web_sessions.delete().where(t.web_sessions.c.username == username))
            conn.execute(t.api_tokens.delete().where(t.api_tokens.c.username == username))
            conn.execute(t.users.delete().where(t.users.c.username == username))
        self.forget_lookups()

    def set_password(self, username: str, password: str) -> None:
        """Change a password; ends the user's browser sessions."""
        _check_password(password)
        self.get(username)
        with self._engine.begin() as conn:
            conn.execute(
                t.users.update()
                .where(t.users.c.username == username)
                .values(password_hash=self._hasher.hash(password))
            )
            conn.execute(t.web_sessions.delete().where(t.web_sessions.c.username == username))
        self.forget_lookups()

    def authenticate(self, username: str, password: str) -> User:
        """The user if the password is right; :class:`AuthError` otherwise (same message either way)."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.username == username)).first()
        if row is not None:
            stored = row._mapping["password_hash"]
        else:  # verify against a dummy hash so that unknown names take as long as known ones
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_hex(16))
            stored = self._dummy
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            raise AuthError("wrong user name or password") from None
        if row is None:  # pragma: no cover - the dummy hash never verifies
            raise AuthError("wrong user name or password")
        if self._hasher.check_needs_rehash(stored):
            with self._engine.begin() as conn:
                conn.execute(
                    t.users.update()
                    .where(t.users.c.username == username)
                    .values(password_hash=self._hasher.hash(password))
                )
        return self._user(row._mapping)

    @staticmethod
    def _user(m: Any) -> User:
        return User(m["username"], m["role"], m["created_at"], m["created_by"])

    # -- API tokens --------------------------------------------------------------------------

    def create_token(
        self, username: str, name: str = "", *, days: float | None = None
    ) -> tuple[ApiToken, str]:
        """A new API token for ``username``: (its record, the secret, shown only this once)."""
        self.get(username)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        token = ApiToken(
            id=secrets.token_hex(6),
            username=username,
            name=name or "token",
            created_at=now,
            expires_at=now + timedelta(days=days) if days else None,
        )
        with self._engine.begin() as conn:
            conn.execute(
                t.api_tokens.insert(),
                {
                    "id": token.id,
                    "username": username,
                    "token_hash": _digest(secret),
                    "name": token.name,
                    "created_at": now,
                    "expires_at": token.expires_at,
                },
            )
        return token, secret

    def list_tokens(self, username: str | None = None) -> list[ApiToken]:
        """API tokens (of one user when given), oldest first."""
        q = sa.select(t.api_tokens).order_by(t.api_tokens.c.created_at)
        if username is not None:
            q = q.where(t.api_tokens.c.username == username)
        with self._engine.connect() as conn:
            rows = conn.execute(q).all()
        return [ApiToken(r.id, r.username, r.name, r.created_at, r.expires_at) for r in rows]

    def revoke_token(self, token_id: str) -> None:
        """Delete an API token by its id."""
        with self._engine.begin() as conn:
            res = conn.execute(t.api_tokens.delete().where(t.api_tokens.c.id == token_id))
        self.forget_lookups()
        if res.rowcount == 0:
            raise NotFound(f"no API token with id {token_id!r}; `sitewatch users token --list`")

    def user_for_token(self, secret: str) -> User:
        """The owner of an API token; :class:`AuthError` if unknown or expired."""
        digest = _digest(secret)
        hit = self._remembered("t" + digest)
        if hit is not None:
            return hit.user
        q = (
            sa.select(t.users, t.api_tokens.c.expires_at)
            .join(t.api_tokens, t.api_tokens.c.username == t.users.c.username)
            .where(t.api_tokens.c.token_hash == digest)
        )
        with self._engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise AuthError("unknown API token; make one with `sitewatch users token NAME`")
        if row.expires_at is not None and row.expires_at < utcnow():
            raise AuthError("this API token has expired; make a new one")
        user = self._user(row._mapping)
        self._remember("t" + digest, user, None, row.expires_at)
        return user

    # -- browser sessions --------------------------------------------------------------------

    def create_session(self, username: str, *, hours: float = 12.0) -> tuple[str, str]:
        """A new session: (session secret for the cookie, CSRF token)."""
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = utcnow()
        with self._engine.begin() as conn:
            conn.execute(t.web_sessions.delete().where(t.web_sessions.c.expires_at < now))
            conn.execute(
                t.web_sessions.insert(),
                {
                    "token_hash": _digest(secret),
                    "username": username,
                    "csrf": csrf,
                    "created_at": now,
                    "expires_at": now + timedelta(hours=hours),
                },
            )
        return secret, csrf

    def session(self, secret: str) -> tuple[User, str]:
        """The user and CSRF token of a live session; :class:`AuthError` otherwise."""
        digest = _digest(secret)
        hit = self._remembered("s" + digest)
        if hit is not None:
            return hit.user, hit.csrf or ""
        q = (
            sa.select(t.users, t.web_sessions.c.csrf, t.web_sessions.c.expires_at)
            .join(t.web_sessions, t.web_sessions.c.username == t.users.c.username)
            .where(t.web_sessions.c.token_hash == digest)
        )
        with self._engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None or row.expires_at < utcnow():
            raise AuthError("your session has ended; log in again")
        user, csrf = self._user(row._mapping), str(row.csrf)
        self._remember("s" + digest, user, csrf, row.expires_at)
        return user, csrf

    def end_session(self, secret: str) -> None:
        """Log a session out."""
        with self._engine.begin() as conn:
            conn.execute(
                t.web_sessions.delete().where(t.web_sessions.c.token_hash == _digest(secret))
            )
        self.forget_lookups()
