"""Shared CLI state and options: the catalog to open, JSON output, consoles."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ..config import get_settings

if TYPE_CHECKING:
    from ..catalog.store import Catalog

__all__ = [
    "CliState",
    "Finite",
    "check_removable",
    "console",
    "echo_json",
    "echo_updated",
    "err_console",
    "json_option",
    "open_catalog",
    "parse_pairs",
    "parse_when",
    "state",
    "table",
]

F = TypeVar("F", bound=Callable[..., Any])


class Choice(click.Choice):  # type: ignore[type-arg]
    """A choice that takes ``pca-kmeans``, ``PCA_KMeans`` or ``"active construction"`` for
    ``pca_kmeans`` and ``active_construction``: the names are written with underscores, and typing
    them as prose writes them (hyphens, spaces, capitals) should not be refused."""

    def __init__(self, choices: Sequence[str]) -> None:
        super().__init__(choices, case_sensitive=False)

    def normalize_choice(self, choice: object, ctx: click.Context | None) -> str:
        return "_".join(super().normalize_choice(choice, ctx).replace("-", " ").split())


class Finite(click.FloatRange):
    """A float option, optionally bounded, that refuses ``nan`` and ``inf``.

    click's ``FLOAT`` and ``FloatRange`` take both (``nan`` compares false with any bound), which
    would reach a computation or the catalog as a silent wrong number.
    """

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number; give a plain number", param, ctx)
        return rv

    def _describe_range(self) -> str:
        return "" if self.min is None and self.max is None else super()._describe_range()


@dataclass
class CliState:
    """What the top-level group parsed: the catalog URL override and the verbosity."""

    database_url: str | None = None
    verbosity: int = 0


PIPE_WIDTH = 4096
"""Line width of tables written to a file or a pipe (no terminal, no ``COLUMNS``): wide enough
that no row is cut, so that ``sitewatch sites list > sites.txt`` keeps every id whole."""


@cache
def console() -> Console:
    """The console for normal output (stdout); as wide as the terminal, or unlimited in a pipe."""
    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


def table(
    *columns: str,
    right: tuple[str, ...] = (),
    whole: tuple[str, ...] = (),
    title: str | None = None,
) -> Table:
    """A table whose cells fold onto more lines instead of being cut with an ellipsis: on a
    narrow terminal a scene id or a site id stays whole, ready to be copied into the next
    command. ``right`` names the right-aligned (numeric) columns, which like the ``whole`` ones
    (short words, dates) are not folded while others can give way."""
    out = Table(header_style="bold", title=title)
    for col in columns:
        out.add_column(
            col,
            justify="right" if col in right else "left",
            overflow="fold",
            no_wrap=col in right or col in whole,
        )
    return out


@cache
def err_console() -> Console:
    """The console for messages, progress and errors (stderr)."""
    return Console(stderr=True, highlight=False)


def state(ctx: click.Context | None = None) -> CliState:
    """The :class:`CliState` of the running command."""
    ctx = ctx or click.get_current_context()
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliState) else CliState()


def open_catalog(ctx: click.Context | None = None) -> Catalog:
    """Open the catalog named by ``--db``, ``SITEWATCH_DATABASE_URL`` or the default SQLite file."""
    from ..catalog.store import Catalog, new_sqlite_file

    settings = get_settings()
    url = state(ctx).database_url or settings.catalog_url
    created = new_sqlite_file(url)
    cat = Catalog(url, actor=settings.user)
    if created is not None and url != settings.default_catalog_url:
        # a typo in --db or SITEWATCH_DATABASE_URL would otherwise show an empty catalog as if
        # the analyst's sites were gone
        logging.getLogger(__name__).warning(
            "no catalog was at %s: a new, empty one was made there (check --db or "
            "SITEWATCH_DATABASE_URL if you expected your sites)", created,
        )  # fmt: skip
    return cat


def json_option(func: F) -> F:
    """Add ``--json`` (machine-readable output on stdout)."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")(func)


def site_kind_option(func: F) -> F:
    """Add ``--kind`` (repeatable): which of ``--site``'s mapped features a command takes."""
    from ..types import FEATURE_KINDS

    return click.option(
        "--kind",
        "kinds",
        type=Choice(FEATURE_KINDS),
        multiple=True,
        help="With --site: only features of this kind (repeatable), e.g. ugf_portal.",
    )(func)


def echo_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (dates as ISO strings)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_default, ensure_ascii=False) + "\n")


def echo_updated(
    entity: str, stored: Any, as_json: bool, payload: Any = None, *, was: int | None = None
) -> None:
    """Report an edited record: its JSON (``payload``, default the record), or one line with its
    new version; an edit that changed nothing (the catalog keeps version ``was``) says so."""
    if as_json:
        from ..catalog._codec import jsonable

        echo_json(jsonable(stored) if payload is None else payload)
    elif stored.version == was:
        console().print(
            f"nothing changed: {entity} [bold]{stored.id}[/] already has those values (still "
            f"version {stored.version})"
        )
    else:
        console().print(f"updated {entity} [bold]{stored.id}[/] (now version {stored.version})")


def check_removable(what: str, owner: str, asked: Sequence[str], held: Iterable[str]) -> None:
    """Refuse to remove ``asked`` items that ``owner`` does not hold, naming those it does."""
    from ..errors import InputError

    held = list(held)
    missing = [a for a in asked if a not in held]
    if missing:
        raise InputError(
            f"{owner} has no {what} {', '.join(map(repr, missing))}; "
            f"it has {', '.join(map(repr, held)) or 'none'}"
        )


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def parse_pairs(pairs: Sequence[str], option: str, example: str) -> dict[str, str]:
    """``KEY=VALUE`` option values as a dict (later keys win); an :class:`InputError` naming
    ``option`` for one without ``=`` or with an empty key."""
    from ..errors import InputError

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option} needs KEY=VALUE (e.g. {option} {example}), got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def parse_when(text: str, option: str) -> datetime:
    """An ISO date or date-time option value as an aware UTC datetime (a date, or a time without
    a zone, is taken as UTC); an :class:`InputError` naming ``option`` otherwise."""
    from ..errors import InputError

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{option} {text!r} is not an ISO date or time (e.g. 2024-03-01 or "
            "2024-03-01T02:05:00Z)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
