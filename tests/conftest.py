"""Shared fixtures: hermetic environment, network guard, shared data, catalogs on both backends.

Factories for test rasters live in the conftest.py of each test folder (tests/imagery/ ...).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- hermetic environment -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hermetic_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own SITEWATCH_HOME and no catalog URL from the developer's shell."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SITEWATCH_HOME", str(home))
    monkeypatch.delenv("SITEWATCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("SITEWATCH_SOURCES_FILE", raising=False)
    monkeypatch.delenv("SITEWATCH_SCHEDULER", raising=False)
    monkeypatch.delenv("SITEWATCH_ARCHIVE_DIR", raising=False)
    monkeypatch.delenv("SITEWATCH_EVIDENCE_DIR", raising=False)
    monkeypatch.setenv("SITEWATCH_USER", "tester")
    monkeypatch.setenv("SITEWATCH_SHARED_DATA", str(shared_data_path()))


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_local(address):
        raise OSError(f"network access blocked in tests: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_local(address):
        raise OSError(f"network access blocked in tests: {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests are hermetic: only loopback and Unix sockets may be connected."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


# --- shared real data -----------------------------------------------------------------------


def shared_data_path() -> Path:
    """``SITEWATCH_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    configured = os.environ.get("SITEWATCH_SHARED_DATA")
    return Path(configured) if configured else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; missing data fails in CI and skips elsewhere."""
    path = shared_data_path()
    if not (path / "README.md").exists():
        if IN_CI:
            pytest.fail(f"shared data not found at {path}; CI must have ../shared/data")
        pytest.skip(f"shared data not found at {path} (set SITEWATCH_SHARED_DATA)")
    return path


# --- catalogs on both backends ------------------------------------------------------------------


def _pg_url() -> str | None:
    return os.environ.get("SITEWATCH_TEST_PG_URL") or None


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A PostgreSQL server for tests; ``make test`` starts one and sets SITEWATCH_TEST_PG_URL."""
    url = _pg_url()
    if url is None:
        if IN_CI:
            pytest.fail("SITEWATCH_TEST_PG_URL is not set: make test must start PostgreSQL in CI")
        pytest.skip("no PostgreSQL (run through `make test`, or set SITEWATCH_TEST_PG_URL)")
    return url


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """A fresh database for this test session, dropped at the end."""
    import sqlalchemy as sa

    name = f"sitewatch_test_{os.getpid()}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty catalog, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    url: str = request.getfixturevalue("pg_database")
    from sitewatch.catalog.store import Catalog

    cat = Catalog(url)
    cat.wipe()
    cat.close()
    yield url


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Any]:
    """An open, empty :class:`~sitewatch.catalog.store.Catalog` on each backend."""
    from sitewatch.catalog.store import Catalog

    cat = Catalog(catalog_url, actor="tester")
    yield cat
    cat.close()


# --- the CLI, run in-process as from a shell ---------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Runner = Callable[..., Result]


@pytest.fixture
def sw(capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run ``sitewatch ARGS...``; returns exit code, stdout and stderr."""

    def run(*args: str, input: str | None = None) -> Result:
        import io
        import sys

        from sitewatch.cli.main import main

        old_stdin = sys.stdin
        if input is not None:
            sys.stdin = io.StringIO(input)
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
        finally:
            sys.stdin = old_stdin
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
