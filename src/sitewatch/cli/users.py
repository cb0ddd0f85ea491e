"""``sitewatch users``: web app users, roles and API tokens."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..errors import InputError
from .options import Choice, Finite, console, echo_json, err_console, json_option, open_catalog

if TYPE_CHECKING:
    from ..web.users import UserStore

__all__ = ["users"]

_ROLES = ("viewer", "analyst", "admin")


@click.group()
def users() -> None:
    """Manage the users of the web app (roles: viewer, analyst, admin)."""


def _store() -> UserStore:
    from ..web.users import UserStore

    return UserStore.for_catalog(open_catalog())


@users.command("add")
@click.argument("username")
@click.option("--role", type=Choice(_ROLES), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--update", is_flag=True, help="Change the password of an existing user.")
def add(username: str, role: str, password_stdin: bool, update: bool) -> None:
    """Add a user (asks for the password twice unless --password-stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InputError("empty password; give one of at least 8 characters")
    store = _store()
    if update:
        store.set_password(username, password)
        err_console().print(f"password of {username} changed; their sessions ended")
        return
    user = store.add(username, password, role, by=_actor())
    err_console().print(f"added {user.username} ({user.role})")


def _actor() -> str:
    from ..config import get_settings

    return get_settings().user


@users.command("list")
@json_option
def list_users(as_json: bool) -> None:
    """List the users and their roles."""
    rows = [u.to_dict() for u in _store().all()]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        err_console().print("no users; add one with `sitewatch users add NAME --role admin`")
    for r in rows:
        console().print(f"{r['username']:<24} {r['role']:<8} added {r['created_at'] or '?'}")


@users.command("remove")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(username: str, yes: bool) -> None:
    """Remove a user with their tokens and sessions."""
    store = _store()
    store.get(username)
    if not yes:
        click.confirm(f"remove user {username}?", abort=True)
    store.remove(username)
    err_console().print(f"removed {username}")


@users.command("token")
@click.argument("username", required=False)
@click.option("--name", default="cli", show_default=True, help="A label for the token.")
@click.option(
    "--days", type=Finite(min=0, min_open=True), default=None, help="Expire after this many days."
)
@click.option("--list", "list_", is_flag=True, help="List tokens (of USERNAME when given).")
@click.option("--revoke", metavar="ID", default=None, help="Delete the token with this id.")
@json_option
def token(
    username: str | None,
    name: str,
    days: float | None,
    list_: bool,
    revoke: str | None,
    as_json: bool,
) -> None:
    """Make an API token for USERNAME (printed once), or --list / --revoke tokens."""
    store = _store()
    if revoke:
        store.revoke_token(revoke)
        err_console().print(f"revoked token {revoke}")
        return
    if list_:
        rows = [t.to_dict() for t in store.list_tokens(username)]
        if as_json:
            echo_json(rows)
            return
        for r in rows:
            console().print(f"{r['id']}  {r['username']:<20} {r['name']:<16} {r['created_at']}")
        return
    if not username:
        raise InputError("give the user name: sitewatch users token NAME")
    record, secret = store.create_token(username, name, days=days)
    if as_json:
        echo_json({**record.to_dict(), "token": secret})
        return
    err_console().print(
        f"token {record.id} for {username} (shown only now; send it as 'Authorization: Bearer ...'):"
    )
    console().print(secret)
