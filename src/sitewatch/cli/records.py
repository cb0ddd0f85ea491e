"""Deleting a record that measurements may refer to (a feature, an observation), for the CLI.

Its measurements are never dropped or unlinked silently: the analyst chooses to keep them on the
site or to delete them (see :meth:`sitewatch.catalog.store.Catalog.delete_feature`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import click

from ..errors import InputError
from .options import console, open_catalog

if TYPE_CHECKING:
    from ..catalog.store import MeasurementsChoice

__all__ = ["delete_measured", "delete_options"]


def delete_options(func: Any) -> Any:
    """The options of a delete command whose record measurements may refer to."""
    for option in reversed(
        [
            click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
            click.option("--expect-version", type=int, help="Refuse if someone changed it since."),
            click.option(
                "--keep-measurements",
                "keep",
                is_flag=True,
                help="Keep its measurements on the site (naming it in their inputs).",
            ),
            click.option(
                "--delete-measurements",
                "drop",
                is_flag=True,
                help="Delete its measurements with it.",
            ),
        ]
    ):
        func = option(func)
    return func


def delete_measured(
    entity: Literal["feature", "observation"],
    rid: str,
    yes: bool,
    expect_version: int | None,
    keep: bool,
    drop: bool,
) -> None:
    """Delete feature or observation ``rid`` after asking (unless ``yes``), with its
    measurements kept (``keep``) or deleted (``drop``); refuses when it has some and neither
    was chosen."""
    if keep and drop:
        raise InputError("give --keep-measurements or --delete-measurements, not both")
    with open_catalog() as cat:
        if entity == "feature":
            f = cat.get_feature(rid)
            what, site_id = f"{f.kind} {f.name or f.id}", f.site_id
            held = cat.list_measurements(feature_id=rid)
        else:
            o = cat.get_observation(rid)
            what = f"observation {rid} of {o.acquired.date().isoformat()}"
            site_id = o.site_id
            held = [m for m in cat.list_measurements(site_id=o.site_id) if m.observation_id == rid]
        if held and not (keep or drop):
            kinds = ", ".join(sorted({m.kind for m in held}))
            raise InputError(
                f"{entity} {rid!r} has {len(held)} measurement(s) ({kinds}): give "
                "--keep-measurements to keep them on the site, or --delete-measurements"
            )
        if not yes:
            extra = ""
            if held:
                extra = (
                    f" and its {len(held)} measurement(s)"
                    if drop
                    else f" (its {len(held)} measurement(s) stay on the site)"
                )
            click.confirm(f"delete {what} of site {site_id}{extra}?", abort=True)
        choice: MeasurementsChoice = "delete" if drop else "keep" if keep else "refuse"
        if entity == "feature":
            n = cat.delete_feature(rid, version=expect_version, measurements=choice)
        else:
            n = cat.delete_observation(rid, version=expect_version, measurements=choice)
    done = ""
    if n:
        done = f" and {n} measurement(s)" if drop else f"; {n} measurement(s) kept on the site"
    console().print(f"deleted {entity} [bold]{rid}[/]{done}")
