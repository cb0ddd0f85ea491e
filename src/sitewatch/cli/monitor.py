"""``sitewatch monitor run``: the daily job (cron-friendly exit codes).

Exit codes: 0 every site done; 1 some sites failed (see the report); 2 bad input or configuration;
3 with ``--fail-on-alert`` when new alerts were raised.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import get_settings
from ..errors import InputError
from ..types import CHANGE_METHODS as METHODS
from .options import Choice, Finite, console, echo_json, err_console, json_option, open_catalog

__all__ = ["monitor"]


@click.group()
def monitor() -> None:
    """Watch sites: new scenes, change, activity and alerts."""


@monitor.command("run")
@click.option("--site", "sites", multiple=True, help="A site id (repeat for several).")
@click.option("--all", "all_sites", is_flag=True, help="Every site in the catalog.")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Only scenes from this date on become observations.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="Imagery source: configured name, folder, catalog.json or STAC URL.",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Let STAC URLs reach private/loopback addresses (a server on your own network).",
)
@click.option(
    "--scheduler",
    envvar="SITEWATCH_SCHEDULER",
    help="dask.distributed scheduler, e.g. tcp://10.0.0.5:8786.",
)
@click.option(
    "--resolution",
    type=Finite(min=0.05),
    default=None,
    help="Chip pixel size (m). Default: that of the site's archived chips, else the scenes' own "
    "(the finest of them), else 10.",
)
@click.option(
    "--size",
    "size_m",
    type=Finite(min=10),
    default=2000.0,
    show_default=True,
    help="Chip size (m) for sites without an AOI.",
)
@click.option(
    "--ring",
    "ring_m",
    type=Finite(min=0),
    default=60.0,
    show_default=True,
    help="Surroundings (m) cut with each site; activity is judged against them. Widened where "
    "they would hold under 1,000 pixels (coarse imagery, small sites).",
)
@click.option(
    "--method",
    "change_method",
    type=Choice(METHODS),
    help="Change method (default: cva with invariant-pixel normalisation).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rules and sinks TOML.",
)
@click.option(
    "--no-imagery",
    is_flag=True,
    help="Only check the stored measurements (for analysts who measure on their own imagery); "
    "no scene is searched.",
)
@click.option("--fail-on-alert", is_flag=True, help="Exit 3 when new alerts were raised.")
@json_option
def run(
    sites: tuple[str, ...],
    all_sites: bool,
    since: datetime | None,
    sources: tuple[str, ...],
    allow_private: bool,
    scheduler: str | None,
    resolution: float | None,
    size_m: float,
    ring_m: float,
    change_method: str | None,
    config_path: Path | None,
    no_imagery: bool,
    fail_on_alert: bool,
    as_json: bool,
) -> None:
    """Monitor sites: fetch new scenes, detect change and activity, check the stored
    measurements (a berm measured higher beyond 2 sigma between image dates), and raise alerts,
    each once (rules and sinks: --config, default SITEWATCH_MONITOR_FILE)."""
    from ..monitor.config import load_config
    from ..monitor.job import MonitorOptions, SiteReport, run_monitor
    from ..monitor.sinks import deliver

    if bool(sites) == all_sites:
        raise InputError("give --site SITE (one or more) or --all")
    if no_imagery and sources:
        raise InputError("--no-imagery searches no scene: leave out --source, or --no-imagery")
    settings = get_settings()
    conf = load_config(config_path or settings.monitor_path, required=config_path is not None)
    with open_catalog() as cat:
        ids = (
            [s.id for s in cat.query_sites()] if all_sites else [cat.get_site(s).id for s in sites]
        )
        url = cat.url
    opts = MonitorOptions(
        archive=settings.archive_path,
        sources=sources,
        allow_private=allow_private,
        since=since.date() if since else None,
        resolution=resolution,
        size_m=size_m,
        ring_m=ring_m,
        change_method=change_method,
        rules=conf.rules,
        imagery=not no_imagery,
    )
    if no_imagery and not conf.rules.measured_change:
        raise InputError(
            "--no-imagery checks the stored measurements only, and the rules turn that off "
            "(measured_change = false): nothing to do"
        )
    columns = (
        TextColumn("monitor"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console(), transient=True) as progress:
        task = progress.add_task("", total=len(ids))

        def done(rep: SiteReport) -> None:
            progress.update(task, advance=1, description=rep.site_id)

        reports = run_monitor(url, ids, opts, scheduler=scheduler, on_done=done)
    alert_ids = [a for r in reports for a in r.alerts]
    delivery = None
    if alert_ids:
        with open_catalog() as cat:
            pairs = [(a, cat.get_site(a.site_id)) for a in (cat.get_alert(i) for i in alert_ids)]
        delivery = deliver(pairs, conf.sinks)
    failed = [r for r in reports if r.error]
    if as_json:
        echo_json(
            {
                "sites": [r.as_dict() for r in reports],
                "alerts": len(alert_ids),
                "delivered": delivery.sent if delivery else 0,
                "delivery_failures": delivery.failed if delivery else [],
                "failed_sites": [r.site_id for r in failed],
            }
        )
    else:
        out = console()
        for r in reports:
            for why in r.skipped:
                err_console().print(
                    f"[yellow]{r.site_id}: skipped scene[/] {escape(why)}",
                    markup=True,
                    highlight=False,
                )
            status = (
                f"[red]failed: {escape(r.error)}[/]"
                if r.error
                else (
                    f"{r.new_scenes} new scene(s), {r.change_events} change event(s), "
                    f"{len(r.alerts)} alert(s), phase {(r.phase or 'n/a').replace('_', ' ')}"
                    + (f", {len(r.skipped)} scene(s) skipped" if r.skipped else "")
                )
            )
            out.print(f"{r.site_id}: {status}")
    if failed:
        sys.exit(1)
    if fail_on_alert and alert_ids:
        sys.exit(3)
