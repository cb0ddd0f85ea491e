"""``sitewatch alerts``: list, acknowledge and dismiss alerts."""

from __future__ import annotations

import click

from ..catalog._codec import jsonable
from ..types import ALERT_STATES
from .options import console, echo_json, json_option, open_catalog
from .options import table as make_table

__all__ = ["alerts"]


@click.group()
def alerts() -> None:
    """Alerts raised by the monitor."""


@alerts.command("list")
@click.option("--state", type=click.Choice(ALERT_STATES), multiple=True, help="Default: new.")
@click.option("--all", "show_all", is_flag=True, help="Every state.")
@click.option("--site", "site_id")
@json_option
def list_(state: tuple[str, ...], show_all: bool, site_id: str | None, as_json: bool) -> None:
    """List alerts, newest first."""
    states = None if show_all else (list(state) or ["new"])
    with open_catalog() as cat:
        found = cat.list_alerts(site_id=site_id, state=states)
    if as_json:
        echo_json(jsonable(found))
        return
    table = make_table("id", "when (UTC)", "site", "severity", "rule", "state", "message")
    for a in found:
        when = a.created_at.strftime("%Y-%m-%d %H:%M") if a.created_at else ""
        table.add_row(a.id, when, a.site_id, a.severity, a.rule, a.state, a.message)
    console().print(table)


def _set(alert_ids: tuple[str, ...], state: str) -> None:
    with open_catalog() as cat, cat.transaction():
        for alert_id in alert_ids:
            cat.set_alert_state(alert_id, state)
    console().print(f"{len(alert_ids)} alert(s) {state}")


@alerts.command("ack")
@click.argument("alert_ids", nargs=-1, required=True)
def ack(alert_ids: tuple[str, ...]) -> None:
    """Acknowledge alerts (seen, being looked at)."""
    _set(alert_ids, "acked")


@alerts.command("dismiss")
@click.argument("alert_ids", nargs=-1, required=True)
def dismiss(alert_ids: tuple[str, ...]) -> None:
    """Dismiss alerts (not of interest)."""
    _set(alert_ids, "dismissed")
