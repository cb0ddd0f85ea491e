"""The ``sitewatch`` click group. Subcommands are imported lazily so start-up stays fast."""

from __future__ import annotations

import importlib
import logging
import re
import sys
from typing import Any

import click
from rich.markup import escape

from .. import __version__
from ..errors import SitewatchError, gdal_text
from .options import CliState, err_console

__all__ = ["cli", "main"]

# name -> "module:attribute"; each subcommand lives in its own module of this package.
_COMMANDS: dict[str, str] = {
    "sites": "sitewatch.cli.sites:sites",
    "features": "sitewatch.cli.features:features",
    "observations": "sitewatch.cli.observations:observations",
    "sources": "sitewatch.cli.sources:sources",
    "demo": "sitewatch.cli.demo:demo",
    "search": "sitewatch.cli.search:search",
    "report": "sitewatch.cli.report:report",
    "export": "sitewatch.cli.export:export",
    "serve": "sitewatch.cli.serve:serve",
    "users": "sitewatch.cli.users:users",
    "scenario": "sitewatch.cli.scenario:scenario",
    "alerts": "sitewatch.cli.alerts:alerts",
    "monitor": "sitewatch.cli.monitor:monitor",
    "change": "sitewatch.cli.change:change",
    "imagery": "sitewatch.cli.imagery:imagery",
    "measure": "sitewatch.cli.measure:measure",
    "terrain": "sitewatch.cli.terrain:terrain",
    "range": "sitewatch.cli.ranges:range_group",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


# libtiff's remarks on how a file's tags are laid out: GDAL reads such files correctly, and the
# remark (a line per file, per read) says nothing an analyst can act on. Kept for -vv.
_TIFF_REMARKS = re.compile(
    r"TIFFReadDirectory|TIFFFetchNormalTag|ExtraSamples|Unknown field with tag"
)


_CHATTY = ("alembic", "numexpr", "distributed", "fiona", "matplotlib", "PIL", "urllib3")
"""Libraries whose INFO lines say nothing about the work itself."""


class _TiffRemarks(logging.Filter):
    """Drop libtiff's remarks on tag layout unless debugging (``-vv``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("rasterio") or record.levelno > logging.WARNING:
            return True
        return _TIFF_REMARKS.search(record.getMessage()) is None


def _configure_logging(verbosity: int) -> None:
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.WARNING, 1: logging.INFO}.get(
        verbosity, logging.DEBUG if verbosity > 1 else logging.ERROR
    )
    from rich.logging import RichHandler

    handler = RichHandler(
        console=err_console(),
        show_path=False,
        rich_tracebacks=False,
        log_time_format="[%Y-%m-%d %H:%M:%S]",  # not the locale's month/day/year
    )
    if level > logging.DEBUG:
        handler.addFilter(_TiffRemarks())
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    logging.captureWarnings(True)
    # -v is for what sitewatch does: the libraries' own notes (alembic's plugins, numexpr's
    # threads) come with -vv
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            logging.NOTSET if level <= logging.DEBUG else logging.WARNING
        )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="sitewatch")
@click.option("-v", "--verbose", count=True, help="More output (repeat for debug).")
@click.option("-q", "--quiet", count=True, help="Less output (errors only with -qq).")
@click.option(
    "--db",
    "database_url",
    envvar="SITEWATCH_DATABASE_URL",
    default=None,
    help="Catalog URL (sqlite:///path.db or postgresql://...). Default: SQLite in SITEWATCH_HOME.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int, database_url: str | None) -> None:
    """sitewatch: catalog, image and monitor military sites from satellite imagery."""
    verbosity = verbose - quiet
    _configure_logging(verbosity)
    ctx.obj = CliState(database_url=database_url, verbosity=verbosity)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning sitewatch errors into one clear line and exit code 2."""
    try:
        rv = cli.main(args=argv, prog_name="sitewatch", standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool) and rv:
            sys.exit(rv)  # ``ctx.exit(code)`` returns the code when click is not standalone
        return rv
    except click.exceptions.Abort:
        err_console().print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SitewatchError as exc:
        err_console().print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        if _verbose(argv):
            raise
        sys.exit(2)
    except KeyboardInterrupt:
        err_console().print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # A raster GDAL cannot read (truncated, corrupt) found past a command's own checks: one
        # clear line, not a traceback; anything else is a bug and keeps its traceback.
        if not type(exc).__module__.startswith("rasterio") or _verbose(argv):
            raise
        err_console().print(
            f"[bold red]error:[/] cannot read or write a raster: {escape(gdal_text(exc))}; the file "
            "may be truncated, corrupt or not a raster (check it with gdalinfo; -v shows where)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


def _verbose(argv: list[str] | None) -> bool:
    args = argv or sys.argv
    return "-v" in args or "--verbose" in args
