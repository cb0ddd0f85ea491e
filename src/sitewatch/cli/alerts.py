"""``sitewatch alerts``: list, acknowledge and dismiss alerts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from ..catalog._codec import jsonable
from ..errors import InputError
from ..types import ALERT_STATES
from .options import Choice, console, echo_json, json_option, open_catalog
from .options import table as make_table

if TYPE_CHECKING:
    from ..catalog.models import Alert
    from ..catalog.store import Catalog

__all__ = ["alerts"]


@click.group()
def alerts() -> None:
    """Alerts raised by the monitor."""


_RULE_HELP = (
    "Only this rule (repeatable): changed_area, phase_transition, new_feature_candidate, "
    "measured_change."
)


@alerts.command("list")
@click.option("--state", type=Choice(ALERT_STATES), multiple=True, help="Default: new.")
@click.option("--all", "show_all", is_flag=True, help="Every state.")
@click.option("--site", "site_id")
@click.option("--rule", "rules", multiple=True, help=_RULE_HELP)
@json_option
def list_(
    state: tuple[str, ...], show_all: bool, site_id: str | None, rules: tuple[str, ...],
    as_json: bool,
) -> None:  # fmt: skip
    """List alerts, newest first."""
    states = None if show_all else (list(state) or ["new"])
    with open_catalog() as cat:
        found = _select(cat, site_id, rules, states)
    if as_json:
        echo_json(jsonable(found))
        return
    table = make_table("id", "when (UTC)", "site", "severity", "rule", "state", "message")
    for a in found:
        when = a.created_at.strftime("%Y-%m-%d %H:%M") if a.created_at else ""
        table.add_row(a.id, when, a.site_id, a.severity, a.rule, a.state, a.message)
    console().print(table)


def _select(
    cat: Catalog, site_id: str | None, rules: Sequence[str], states: Sequence[str] | None
) -> list[Alert]:
    """The alerts of ``site_id`` (an unknown site is an error) and ``rules``, in ``states``."""
    if site_id is not None:
        cat.get_site(site_id)
    return cat.list_alerts(site_id=site_id, state=states, rule=rules or None)


def _set(
    alert_ids: tuple[str, ...], site_id: str | None, rules: tuple[str, ...], state: str
) -> None:
    if alert_ids and (site_id or rules):
        raise InputError("give alert ids, or --site/--rule to select alerts, not both")
    if not (alert_ids or site_id or rules):
        raise InputError(
            "give the ids of the alerts (`sitewatch alerts list` shows them), or --site and/or "
            "--rule to select the new ones"
        )
    with open_catalog() as cat, cat.transaction():
        if not alert_ids:
            alert_ids = tuple(a.id for a in _select(cat, site_id, rules, ["new"]))
        for alert_id in alert_ids:
            cat.set_alert_state(alert_id, state)
    console().print(f"{len(alert_ids)} alert(s) {state}")


def _selection(command: Callable[..., None]) -> Callable[..., None]:
    for option in (
        click.option("--rule", "rules", multiple=True, help=_RULE_HELP),
        click.option("--site", "site_id", help="All new alerts of this site (with --rule: of it)."),
        click.argument("alert_ids", nargs=-1),
    ):
        command = option(command)
    return command


@alerts.command("ack")
@_selection
def ack(alert_ids: tuple[str, ...], site_id: str | None, rules: tuple[str, ...]) -> None:
    """Acknowledge alerts (seen, being looked at): by id, or the new ones of --site / --rule."""
    _set(alert_ids, site_id, rules, "acked")


@alerts.command("dismiss")
@_selection
def dismiss(alert_ids: tuple[str, ...], site_id: str | None, rules: tuple[str, ...]) -> None:
    """Dismiss alerts (not of interest): by id, or the new ones of --site / --rule."""
    _set(alert_ids, site_id, rules, "dismissed")
