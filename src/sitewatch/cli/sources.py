"""``sitewatch sources``: the citations behind the catalog (reports, articles, image credits).

A site cites sources by id (``sites add --source``, ``sites edit --add-source``); briefs list
them with their licence. Not to be confused with imagery sources (``imagery``, ``sources.toml``).
"""

from __future__ import annotations

import re
from typing import Any

import click

from ..catalog.models import Source, slugify, source_id_for
from ..errors import InputError
from .options import console, echo_json, err_console, json_option, open_catalog
from .options import table as make_table

__all__ = ["sources"]


def source_json(s: Source) -> dict[str, Any]:
    """The stable JSON form of a source."""
    from ..catalog._codec import jsonable

    data: dict[str, Any] = jsonable(s)
    return data


@click.group()
def sources() -> None:
    """Citations: where the catalog's facts come from."""


@sources.command("add")
@click.argument("source_id", required=False)
@click.option("--citation", required=True, help="e.g. 'CSIS, Undeclared North Korea: ... (2018)'.")
@click.option("--url")
@click.option("--licence", help="e.g. CC BY 4.0, or 'all rights reserved'.")
@click.option("--accessed", type=click.DateTime(["%Y-%m-%d"]), help="When it was read.")
@click.option("--notes", default="")
@json_option
def add(
    source_id: str | None,
    citation: str,
    url: str | None,
    licence: str | None,
    accessed: Any,
    notes: str,
    as_json: bool,
) -> None:
    """Add a source (SOURCE_ID defaults to a slug of the citation's first words)."""
    sid = source_id or source_id_for(citation)
    if not sid or sid != slugify(sid):
        raise InputError(
            f"source id {sid!r} is not a slug (lower-case letters, digits and '-'), "
            f"e.g. {slugify(sid or citation) or 'csis-2018'!r}"
        )
    if url is not None and not re.match(r"^https?://\S+$", url.strip()):
        raise InputError(f"--url {url!r} is not a web address; give it as https://...")
    src = Source(
        id=sid,
        citation=citation,
        url=url.strip() if url else None,
        licence=licence,
        accessed=accessed.date() if accessed else None,
        notes=notes,
    )
    with open_catalog() as cat:
        stored = cat.add_source(src)
    if as_json:
        echo_json(source_json(stored))
    else:
        console().print(
            f"added source [bold]{stored.id}[/]; cite it with "
            f"`sitewatch sites edit SITE --add-source {stored.id}`"
        )


@sources.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Every source, with the sites that cite it."""
    with open_catalog() as cat:
        found = cat.list_sources()
        citing = cat.source_citations()
    if as_json:
        echo_json([{**source_json(s), "sites": citing.get(s.id, [])} for s in found])
        return
    table = make_table("id", "citation", "url", "licence", "accessed", "sites", whole=("id",))
    for s in found:
        table.add_row(
            s.id,
            s.citation,
            s.url or "",
            s.licence or "",
            s.accessed.isoformat() if s.accessed else "",
            ", ".join(citing.get(s.id, [])),
        )
    console().print(table)
    err_console().print(f"{len(found)} source(s)")
