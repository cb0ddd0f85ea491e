"""What the routers share: the app context (catalogs, users, archive, tiles, jobs) and dependencies."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from anyio import CapacityLimiter
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
    "app_context",
    "context",
]

_MAX_WRITERS = 32
_MAX_RESPONSES = 256
_STATE_SQL = "SELECT max(seq) FROM history"


class _SqliteStateProbe:
    """Reads the newest history sequence number over a few plain sqlite3 connections.

    The number is read on every cached response, so it skips SQLAlchemy's pool checkout and the
    explicit BEGIN/ROLLBACK around it: one autocommit SELECT is its own consistent read.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    def __call__(self) -> int:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        try:
            row = conn.execute(_STATE_SQL).fetchone()
        except BaseException:
            conn.close()
            raise
        self._idle.put(conn)
        return int(row[0] or 0)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _state_probe(reader: Catalog, timeout: float) -> _SqliteStateProbe | None:
    url = reader.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return _SqliteStateProbe(url.database, timeout)


@dataclass
class AppContext:
    """Everything a request handler may need, made once per app."""

    catalog_url: str
    settings: WebSettings
    archive_root: Path
    workdir: Path
    evidence_root: Path
    reader: Catalog
    users: UserStore
    tiles: TileRenderer
    limiter: LoginLimiter
    _writers: OrderedDict[str, Catalog] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _responses: OrderedDict[str, tuple[int, bytes]] = field(default_factory=OrderedDict)
    tile_limiter: CapacityLimiter | None = None  # set when the app starts (on its event loop)
    _probe: _SqliteStateProbe | None = None
    _loop_probe: _SqliteStateProbe | None = None

    def __post_init__(self) -> None:
        self._probe = _state_probe(self.reader, timeout=60.0)
        # on the event loop: never wait for a lock (WAL readers do not), fall back to a thread
        self._loop_probe = _state_probe(self.reader, timeout=0.0)

    def catalog_state(self) -> int:
        """The newest history sequence number: it changes with every write to the catalog."""
        if self._probe is not None:
            return self._probe()
        with self.reader.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(t.history.c.seq))).scalar() or 0)

    def peek(self, key: str) -> bytes | None:
        """The cached body of ``key`` if it is still current, when that is cheap to tell; or None.

        Meant for the event loop: on SQLite it is one autocommit read of an integer primary key
        (tens of microseconds; in WAL mode readers do not wait for writers, and a busy database
        answers None at once). Other databases answer None: their check needs a round trip.
        """
        if self._loop_probe is None:
            return None
        try:
            seq = self._loop_probe()
        except sqlite3.Error:
            return None
        with self._lock:
            hit = self._responses.get(key)
            if hit is None or hit[0] != seq:
                return None
            self._responses.move_to_end(key)
            return hit[1]

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
        for probe in (self._probe, self._loop_probe):
            if probe is not None:
                probe.close()
        self.tiles.close()
        self.reader.close()


def app_context(request: Request) -> AppContext:
    """The app's :class:`AppContext`."""
    ctx: AppContext = request.app.state.sitewatch
    return ctx


async def context(request: Request) -> AppContext:
    """The app's :class:`AppContext` (a dependency; async, so FastAPI needs no worker thread)."""
    return app_context(request)


Ctx = Annotated[AppContext, Depends(context)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Analyst = Annotated[Principal, Depends(require("analyst"))]
Admin = Annotated[Principal, Depends(require("admin"))]
