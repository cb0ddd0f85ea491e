"""``sitewatch observations``: dated looks at a site, with their evidence files.

``add`` records what an analyst saw in one image: the date, the scene (an archived chip's id fills
the date, sensor, pixel size and sun angles from its STAC item), the SMART activity phase, a text,
and evidence (local files are copied into the evidence folder by content, see
:mod:`sitewatch.catalog.evidence`; web addresses are kept). ``list`` shows them, ``evidence``
prints where an evidence reference's file is. ``edit`` corrects one and ``delete`` retracts one;
the history keeps what each said before.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ..catalog._codec import jsonable
from ..catalog.evidence import evidence_references, resolve_evidence
from ..catalog.models import Observation, new_id
from ..config import get_settings
from ..errors import InputError
from ..types import ACTIVITY_PHASES
from .options import (
    Choice,
    Finite,
    check_removable,
    console,
    echo_json,
    echo_updated,
    err_console,
    json_option,
    open_catalog,
    parse_when,
)
from .options import table as make_table
from .records import delete_measured, delete_options

__all__ = ["observations"]


def _when(text: str) -> datetime:
    when = parse_when(text, "--date")
    if when > datetime.now(UTC) + timedelta(days=1):
        raise InputError(f"--date {text!r} is in the future; give the image's acquisition date")
    return when


def _from_archive(site_id: str, ref: str) -> dict[str, Any]:
    """What an archived chip of the site says about its acquisition, or {} if ``ref`` is no
    chip of the site (a commercial catalog id, say)."""
    from ..imagery.archive import Archive

    chips = Archive(get_settings().archive_path).find(ref, site_id)
    if not chips:
        return {}
    chip = chips[0]
    props = json.loads(chip.item_path.read_text(encoding="utf-8")).get("properties", {})
    return {
        "acquired": chip.datetime,
        "scene_id": chip.scene_id,
        "sensor": chip.sensor,
        "gsd_m": props.get("sitewatch:scene_gsd") or chip.resolution,
        "sun_azimuth": props.get("view:sun_azimuth"),
        "sun_elevation": props.get("view:sun_elevation"),
        "view_off_nadir": props.get("view:off_nadir"),
    }


@click.group()
def observations() -> None:
    """Dated observations of sites, with their evidence."""


@observations.command("add")
@click.argument("site_id")
@click.option("--date", "when", help="Acquisition date or time (UTC), e.g. 2024-03-01.")
@click.option(
    "--scene",
    help="Scene id; an archived chip of the site (imagery ls) fills date, sensor and sun angles.",
)
@click.option("--sensor", help="e.g. WorldView-3, Sentinel-2A.")
@click.option("--gsd", "gsd_m", type=Finite(0), help="Ground sample distance, metres.")
@click.option("--sun-azimuth", type=Finite(0, 360))
@click.option("--sun-elevation", type=Finite(-90, 90))
@click.option("--off-nadir", "view_off_nadir", type=Finite(0, 90))
@click.option("--phase", type=Choice(ACTIVITY_PHASES), help="SMART activity phase.")
@click.option("--text", default="", help="What was seen.")
@click.option(
    "--evidence",
    multiple=True,
    help="A file (copied into the evidence folder) or a web address; repeatable.",
)
@json_option
def add(
    site_id: str,
    when: str | None,
    scene: str | None,
    phase: str | None,
    text: str,
    evidence: Sequence[str],
    as_json: bool,
    **given: Any,
) -> None:
    """Record an observation of SITE_ID."""
    with open_catalog() as cat:
        cat.get_site(site_id)
        fields: dict[str, Any] = _from_archive(site_id, scene) if scene else {}
        if scene and not fields:
            fields["scene_id"] = scene
        if when is not None:
            fields["acquired"] = _when(when)
        if "acquired" not in fields:
            raise InputError(
                "give the acquisition date with --date (e.g. 2024-03-01), or --scene with the id "
                "of an archived chip of the site (`sitewatch imagery ls "
                f"{site_id}` lists them)"
            )
        fields.update({k: v for k, v in given.items() if v is not None})
        folder = get_settings().evidence_path
        refs = evidence_references(evidence, folder)
        stored = cat.add_observation(
            Observation(
                id=new_id(),
                site_id=site_id,
                analyst=cat.actor,
                phase=phase,  # type: ignore[arg-type]
                text=text,
                evidence=refs,
                **fields,
            )
        )
    if as_json:
        echo_json(jsonable(stored))
    else:
        console().print(
            f"recorded observation [bold]{stored.id}[/] of {site_id} on "
            f"{stored.acquired.date().isoformat()}"
            + (f" with {len(refs)} evidence item(s)" if refs else "")
        )


@observations.command("edit")
@click.argument("observation_id")
@click.option("--date", "when", help="Acquisition date or time (UTC), e.g. 2024-03-01.")
@click.option("--scene", "scene_id", help="Scene id.")
@click.option("--sensor")
@click.option("--gsd", "gsd_m", type=Finite(0), help="Ground sample distance, metres.")
@click.option("--sun-azimuth", type=Finite(0, 360))
@click.option("--sun-elevation", type=Finite(-90, 90))
@click.option("--off-nadir", "view_off_nadir", type=Finite(0, 90))
@click.option("--phase", type=Choice(ACTIVITY_PHASES), help="SMART activity phase.")
@click.option("--no-phase", is_flag=True, help="Clear the phase.")
@click.option("--text", help="What was seen (replaces the text).")
@click.option("--add-evidence", multiple=True, help="A file or web address to add; repeatable.")
@click.option(
    "--remove-evidence",
    multiple=True,
    help="An evidence reference or address to remove (the file stays in the folder).",
)
@click.option("--expect-version", type=int, help="Refuse if someone changed it since.")
@json_option
def edit(
    observation_id: str,
    when: str | None,
    phase: str | None,
    no_phase: bool,
    text: str | None,
    add_evidence: Sequence[str],
    remove_evidence: Sequence[str],
    expect_version: int | None,
    as_json: bool,
    **given: Any,
) -> None:
    """Correct an observation; refuses to overwrite someone else's newer edit."""
    if phase and no_phase:
        raise InputError("give --phase or --no-phase, not both")
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if when is not None:
        changes["acquired"] = _when(when)
    if phase is not None or no_phase:
        changes["phase"] = phase
    if text is not None:
        changes["text"] = text
    if not (changes or add_evidence or remove_evidence):
        raise InputError("nothing to change: give what to correct (see --help)")
    with open_catalog() as cat:
        o = cat.get_observation(observation_id)
        check_removable("evidence", f"observation {observation_id!r}", remove_evidence, o.evidence)
        kept = [r for r in o.evidence if r not in remove_evidence]
        added = evidence_references(add_evidence, get_settings().evidence_path)
        evidence = tuple(dict.fromkeys([*kept, *added]))
        version = expect_version if expect_version is not None else o.version
        stored = cat.update_observation(
            dataclasses.replace(o, **changes, evidence=evidence, version=version)
        )
    echo_updated("observation", stored, as_json, was=version)


@observations.command("delete")
@click.argument("observation_id")
@delete_options
def delete(
    observation_id: str, yes: bool, expect_version: int | None, keep: bool, drop: bool
) -> None:
    """Retract an observation (the history keeps it; evidence files stay in their folder)."""
    delete_measured("observation", observation_id, yes, expect_version, keep, drop)


@observations.command("list")
@click.argument("site_id")
@click.option("--phase", type=Choice(ACTIVITY_PHASES), multiple=True)
@json_option
def list_(site_id: str, phase: Sequence[str], as_json: bool) -> None:
    """Observations of SITE_ID, oldest first."""
    with open_catalog() as cat:
        cat.get_site(site_id)
        found = [o for o in cat.list_observations(site_id) if not phase or o.phase in phase]
    if as_json:
        echo_json([jsonable(o) for o in found])
        return
    table = make_table(
        "id", "acquired (UTC)", "sensor", "phase", "analyst", "text", "evidence", whole=("id",)
    )
    for o in found:
        table.add_row(
            o.id,
            o.acquired.strftime("%Y-%m-%d %H:%M"),
            " ".join(t for t in (o.sensor, f"{o.gsd_m:g} m" if o.gsd_m else "") if t),
            (o.phase or "").replace("_", " "),
            o.analyst,
            o.text,
            "\n".join(o.evidence),
        )
    console().print(table)
    err_console().print(f"{len(found)} observation(s)")


@observations.command("evidence")
@click.argument("reference")
def evidence_path(reference: str) -> None:
    """Print the file of an evidence REFERENCE (evidence:<sha256>/<name>), checked."""
    click.echo(str(resolve_evidence(reference, get_settings().evidence_path)))
