"""What the routers share: the app context (catalogs, users, archive, tiles, jobs) and dependencies."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from ..catalog import schema as t
from ..catalog.store import Catalog
from .auth import LoginLimiter, Principal, require
from .settings import WebSettings
from .tiles import TileRenderer
from .users import UserStore

__all__ = [
    "Admin",
    "Analyst",
    "AppContext",
    "Viewer",
    "context",
]

_MAX_WRITERS = 32
_MAX_RESPONSES = 256


@dataclass
class AppContext:
    """Everything a request handler may need, made once per app."""

    catalog_url: str
    settings: WebSettings
    archive_root: Path
    workdir: Path
    reader: Catalog
    users: UserStore
    tiles: TileRenderer
    limiter: LoginLimiter
    _writers: OrderedDict[str, Catalog] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _responses: OrderedDict[str, tuple[int, bytes]] = field(default_factory=OrderedDict)

    def catalog_state(self) -> int:
        """The newest history sequence number: it changes with every write to the catalog."""
        with self.reader.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(t.history.c.seq))).scalar() or 0)

    def cached(self, key: str, compute: Callable[[], bytes]) -> bytes:
        """A response body for ``key``, recomputed only when the catalog changed since.

        Every catalog write (by this server, the CLI or another process) appends to the history,
        so the history's newest sequence number is a cheap, exact validator.
        """
        seq = self.catalog_state()
        with self._lock:
            hit = self._responses.get(key)
            if hit is not None and hit[0] == seq:
                self._responses.move_to_end(key)
                return hit[1]
        body = compute()
        with self._lock:
            self._responses[key] = (seq, body)
            while len(self._responses) > _MAX_RESPONSES:
                self._responses.popitem(last=False)
        return body

    def catalog(self, principal: Principal) -> Catalog:
        """A catalog whose writes are recorded in the history as made by ``principal``."""
        name = principal.username
        with self._lock:
            cat = self._writers.get(name)
            if cat is not None:
                self._writers.move_to_end(name)
                return cat
        cat = Catalog(self.catalog_url, actor=name)
        with self._lock:
            self._writers[name] = cat
            while len(self._writers) > _MAX_WRITERS:
                _, old = self._writers.popitem(last=False)
                old.close()
        return cat

    def close(self) -> None:
        """Release every database connection."""
        with self._lock:
            for cat in self._writers.values():
                cat.close()
            self._writers.clear()
        self.reader.close()


def context(request: Request) -> AppContext:
    """The app's :class:`AppContext`."""
    ctx: AppContext = request.app.state.sitewatch
    return ctx


Ctx = Annotated[AppContext, Depends(context)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Analyst = Annotated[Principal, Depends(require("analyst"))]
Admin = Annotated[Principal, Depends(require("admin"))]
