"""``sitewatch sources``: the citations behind the catalog (reports, articles, image credits).

``add``, ``edit``, ``delete`` (only of a source no site cites) and ``list`` (with the sites
citing each). A site cites sources by id (``sites add --source``, ``sites edit --add-source``); briefs list
them with their licence. Not to be confused with imagery sources (``imagery``, ``sources.toml``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import click

from ..catalog._codec import jsonable
from ..catalog.models import Source, slugify, source_id_for
from ..errors import InputError
from .options import console, echo_json, echo_updated, err_console, json_option, open_catalog
from .options import table as make_table

__all__ = ["sources"]


def _url(text: str) -> str:
    if not re.match(r"^https?://\S+$", text.strip()):
        raise InputError(f"--url {text!r} is not a web address; give it as https://...")
    return text.strip()


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
    src = Source(
        id=sid,
        citation=citation,
        url=_url(url) if url is not None else None,
        licence=licence,
        accessed=accessed.date() if accessed else None,
        notes=notes,
    )
    with open_catalog() as cat:
        stored = cat.add_source(src)
    if as_json:
        echo_json(jsonable(stored))
    else:
        console().print(
            f"added source [bold]{stored.id}[/]; cite it with "
            f"`sitewatch sites edit SITE --add-source {stored.id}`"
        )


@sources.command("edit")
@click.argument("source_id")
@click.option("--citation")
@click.option("--url")
@click.option("--licence")
@click.option("--accessed", type=click.DateTime(["%Y-%m-%d"]))
@click.option("--notes")
@click.option(
    "--expect-version", type=int, help="Fail unless the stored source is at this version."
)
@json_option
def edit(
    source_id: str, accessed: Any, expect_version: int | None, as_json: bool, **kw: Any
) -> None:
    """Edit a source; refuses to overwrite someone else's newer edit."""
    if kw["url"] is not None:
        kw["url"] = _url(kw["url"])
    with open_catalog() as cat:
        src = cat.get_source(source_id)
        changes = {k: v for k, v in kw.items() if v is not None}
        if accessed is not None:
            changes["accessed"] = accessed.date()
        version = expect_version if expect_version is not None else src.version
        stored = cat.update_source(dataclasses.replace(src, **changes, version=version))
    echo_updated("source", stored, as_json, was=version)


@sources.command("delete")
@click.argument("source_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(source_id: str, yes: bool) -> None:
    """Delete a source that no site cites (the history keeps a snapshot)."""
    with open_catalog() as cat:
        src = cat.get_source(source_id)
        if not yes:
            click.confirm(f"delete the source {src.citation!r}?", abort=True)
        cat.delete_source(source_id)
    console().print(f"deleted source [bold]{source_id}[/]")


@sources.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Every source, with the sites that cite it."""
    with open_catalog() as cat:
        found = cat.list_sources()
        citing = cat.source_citations()
    if as_json:
        echo_json([{**jsonable(s), "sites": citing.get(s.id, [])} for s in found])
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
