"""``sitewatch change events`` and ``change delete``: the change events stored for a site.

``change detect --site`` and the monitor record them; an event recorded from the wrong images or
dates is retracted here (the history keeps it), and a second detection on the same dates with the
same method replaces the first (see ``change detect``).
"""

from __future__ import annotations

import click

from ..errors import NotFound
from .options import console, echo_json, json_option, open_catalog
from .options import table as make_table

__all__ = ["delete_event", "list_events"]


@click.command("events")
@click.argument("site_id")
@json_option
def list_events(site_id: str, as_json: bool) -> None:
    """List the change events of SITE_ID, oldest AFTER date first, with their ids."""
    from ..analysis.landcover import kind_text
    from ..catalog._codec import jsonable

    with open_catalog() as cat:
        cat.get_site(site_id)
        events = cat.list_change_events(site_id)
    if as_json:
        echo_json(jsonable(events))
        return
    if not events:
        console().print(
            f"no change events of {site_id}: `sitewatch change detect BEFORE AFTER -o OUT.tif "
            f"--site {site_id}` or `sitewatch monitor run` records them"
        )
        return
    cols = ("id", "before", "after", "method", "area m²", "patches", "kinds")
    table = make_table(
        *cols,
        right=("area m²", "patches"),
        whole=("before", "after"),
        title=f"change events of {site_id}",
    )
    for e in events:
        details = e.details or {}
        patches = details.get("patches")
        table.add_row(
            e.id,
            e.before.date().isoformat(),
            e.after.date().isoformat(),
            e.method,
            f"{e.area_m2:,.0f}",
            "" if patches is None else f"{patches:,}",
            kind_text(details.get("kinds")),
        )
    console().print(table)


@click.command("delete")
@click.argument("event_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--expect-version", type=int, help="Refuse if someone changed it since.")
@click.option(
    "--keep-alerts", is_flag=True, help="Leave the open alerts raised from it (default: dismiss)."
)
def delete_event(event_id: str, yes: bool, expect_version: int | None, keep_alerts: bool) -> None:
    """Retract a change event recorded in error (the history keeps it) and dismiss the open
    alerts raised from it; `change events SITE` lists the ids."""
    with open_catalog() as cat:
        try:
            e = cat.get_change_event(event_id)
        except NotFound:
            raise NotFound(
                f"no change event with id {event_id!r}; `sitewatch change events SITE` lists "
                "a site's events"
            ) from None
        what = (
            f"the change of {e.area_m2:,.0f} m² ({e.method}) between "
            f"{e.before.date().isoformat()} and {e.after.date().isoformat()} at site {e.site_id}"
        )
        if not yes:
            click.confirm(f"delete {what}?", abort=True)
        dismissed = cat.delete_change_event(
            event_id, version=expect_version, dismiss_alerts=not keep_alerts
        )
    console().print(f"deleted change event [bold]{event_id}[/]: {what}", highlight=False)
    if dismissed:
        console().print(
            f"dismissed {len(dismissed)} open alert(s) raised from it: {', '.join(dismissed)} "
            "(the history keeps them)", highlight=False,
        )  # fmt: skip
