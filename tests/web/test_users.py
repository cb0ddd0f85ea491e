"""Users, tokens and sessions in the catalog database; the 0002 migration; the users CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from sitewatch.catalog.store import Catalog
from sitewatch.errors import AuthError, DuplicateError, InputError, NotFound
from sitewatch.web.users import UserStore, has_role


@pytest.fixture
def store(catalog: Catalog) -> UserStore:
    """A user store on each backend (SQLite, and PostgreSQL when available)."""
    from argon2 import PasswordHasher

    return UserStore.for_catalog(
        catalog, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def test_passwords_are_argon2_hashed(store: UserStore) -> None:
    store.add("ana", "correct horse", "analyst")
    with store._engine.connect() as conn:
        (stored,) = conn.execute(sa.text("select password_hash from users")).one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert store.authenticate("ana", "correct horse").role == "analyst"
    with pytest.raises(AuthError, match="wrong user name or password"):
        store.authenticate("ana", "wrong horse")
    with pytest.raises(AuthError, match="wrong user name or password"):
        store.authenticate("nobody", "correct horse")


def test_user_rules(store: UserStore) -> None:
    store.add("ana", "long-enough")
    with pytest.raises(DuplicateError):
        store.add("ana", "long-enough")
    with pytest.raises(InputError, match="at least 8"):
        store.add("bob", "short")
    with pytest.raises(InputError, match="unknown role"):
        store.add("bob", "long-enough", "root")
    with pytest.raises(InputError, match="not allowed"):
        store.add("Bob Smith", "long-enough")
    assert [u.username for u in store.all()] == ["ana"]
    store.remove("ana")
    with pytest.raises(NotFound):
        store.get("ana")
    assert has_role("admin", "analyst") and not has_role("viewer", "analyst")


def test_tokens_are_stored_hashed_and_expire(store: UserStore) -> None:
    store.add("bot", "long-enough", "analyst")
    token, secret = store.create_token("bot", "nightly")
    assert store.user_for_token(secret).username == "bot"
    with store._engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(sa.text("select token_hash from api_tokens"))]
    assert secret not in hashes and len(hashes[0]) == 64
    _, old = store.create_token("bot", "old", days=-1)
    with pytest.raises(AuthError, match="expired"):
        store.user_for_token(old)
    store.revoke_token(token.id)
    with pytest.raises(AuthError):
        store.user_for_token(secret)
    store.remove("bot")  # tokens go with the user
    assert store.list_tokens() == []


def test_sessions_end_on_password_change(store: UserStore) -> None:
    store.add("ana", "long-enough")
    secret, csrf = store.create_session("ana", hours=1)
    assert store.session(secret) == (store.get("ana"), csrf)
    store.set_password("ana", "another-password")
    with pytest.raises(AuthError):
        store.session(secret)
    expired, _ = store.create_session("ana", hours=-1)
    with pytest.raises(AuthError):
        store.session(expired)


def test_migration_0002_upgrades_an_0001_catalog(tmp_path: Path) -> None:
    from sitewatch.catalog._migrate import head_revision

    url = f"sqlite:///{tmp_path / 'old.db'}"
    Catalog(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # make it look like a catalog from before the web app
        for name in ("web_sessions", "api_tokens", "users"):
            conn.execute(sa.text(f"DROP TABLE {name}"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    with Catalog(url) as cat:
        UserStore.for_catalog(cat).add("ana", "long-enough")
    insp = sa.inspect(engine)
    fresh = sa.inspect(sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}"))
    assert {"users", "api_tokens", "web_sessions"} <= set(insp.get_table_names())
    with engine.connect() as conn:
        version = conn.execute(sa.text("select version_num from alembic_version")).scalar()
    assert version == head_revision()  # upgraded through 0002 (and any later revision)
    new_url = f"sqlite:///{tmp_path / 'new.db'}"
    Catalog(new_url).close()
    new = sa.inspect(sa.create_engine(new_url))
    for table in ("users", "api_tokens", "web_sessions"):
        cols = [(c["name"], str(c["type"]), c["nullable"]) for c in fresh.get_columns(table)]
        assert cols == [(c["name"], str(c["type"]), c["nullable"]) for c in new.get_columns(table)]
        assert sorted(i["name"] for i in fresh.get_indexes(table)) == sorted(
            i["name"] for i in new.get_indexes(table)
        )


def test_users_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import json

    from sitewatch.cli.main import main

    db = ["--db", f"sqlite:///{tmp_path / 'c.db'}"]
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    main([*db, "users", "add", "ana", "--role", "analyst", "--password-stdin"])
    main([*db, "users", "list", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [(r["username"], r["role"], r["created_by"]) for r in rows] == [
        ("ana", "analyst", "tester")
    ]
    main([*db, "users", "token", "ana", "--name", "ci", "--json"])
    tok = json.loads(capsys.readouterr().out)
    with Catalog(db[1]) as cat:
        assert UserStore.for_catalog(cat).user_for_token(tok["token"]).username == "ana"
    with pytest.raises(SystemExit) as exc:
        main([*db, "users", "add", "ana", "--password-stdin"])
    assert exc.value.code == 2
    main([*db, "users", "remove", "ana", "--yes"])
    main([*db, "users", "list", "--json"])
    assert json.loads(capsys.readouterr().out) == []


def test_serve_demo_builds_a_catalog_with_a_one_time_login(tmp_path: Path) -> None:
    from sitewatch.cli.serve import build_demo

    demo = build_demo(tmp_path / "demo")
    with Catalog(demo.catalog_url) as cat:
        assert cat.count_sites() >= 5
        assert UserStore.for_catalog(cat).authenticate("demo", demo.password).role == "admin"
    again = build_demo(tmp_path / "demo")  # a new password each time; the old one stops working
    assert again.password != demo.password
    with Catalog(demo.catalog_url) as cat, pytest.raises(AuthError):
        UserStore.for_catalog(cat).authenticate("demo", demo.password)
