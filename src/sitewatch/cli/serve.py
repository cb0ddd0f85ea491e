"""``sitewatch serve``: the web app (REST API, tiles and the browser UI) with uvicorn."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import click

from ..config import get_settings
from .options import err_console, state

__all__ = ["DemoServer", "build_demo", "serve"]


class DemoServer:
    """A throw-away demo catalog with one admin login (see :func:`build_demo`)."""

    def __init__(self, folder: Path, catalog_url: str, archive: Path, username: str, password: str):
        self.folder = folder
        self.catalog_url = catalog_url
        self.archive = archive
        self.username = username
        self.password = password

    def cleanup(self) -> None:
        """Delete the demo folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def build_demo(folder: Path | None = None) -> DemoServer:
    """A demo catalog (the publicly reported bases shipped with sitewatch) and a random admin login."""
    from ..catalog.store import Catalog
    from ..web.users import UserStore
    from .demo import reported_sites

    root = folder or Path(tempfile.mkdtemp(prefix="sitewatch-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(root / 'catalog.db').resolve()}"
    password = secrets.token_urlsafe(12)
    with Catalog(url, actor="sitewatch-demo") as cat:
        if cat.count_sites() == 0:
            cat.import_records(reported_sites(), path="sitewatch.data/reported_sites.json")
        users = UserStore.for_catalog(cat)
        if any(u.username == "demo" for u in users.all()):
            users.set_password("demo", password)
        else:
            users.add("demo", password, "admin", by="sitewatch-demo")
    archive = root / "archive"
    archive.mkdir(exist_ok=True)
    return DemoServer(root, url, archive, "demo", password)


def _say_what_is_served(ctx: click.Context) -> None:
    """Warn before serving a catalog no one can log in to (no users yet) and name an empty one:
    a new server otherwise showed a login that no password opened, or an empty map."""
    from ..web.users import UserStore
    from .options import open_catalog

    with open_catalog(ctx) as cat:  # warns when --db names no catalog yet
        sites = cat.count_sites()
        users = UserStore.for_catalog(cat).all()
    con = err_console()
    if not users:
        con.print(
            "[yellow]warning[/] no user can log in yet: add one first with "
            "`sitewatch users add NAME --role analyst` (roles: viewer, analyst, admin)"
        )
    if not sites:
        con.print(
            "[yellow]note[/] the catalog holds no sites yet: add them with `sitewatch sites add` "
            "or `sitewatch sites import`, or in the app"
        )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--demo", is_flag=True, help="Serve a throw-away demo catalog with a one-time admin login."
)
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Imagery archive to serve tiles from (default: SITEWATCH_ARCHIVE_DIR or HOME/archive).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes. More than 1 uses more cores, but report jobs and the failed-login "
    "limit are then per process: a report must be followed on the process that made it, so keep "
    "1 where the UI's reports are used.",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, demo: bool, archive: Path | None, workers: int
) -> None:
    """Run the web app: map-based review, REST API (/docs) and imagery tiles.

    uvicorn uses uvloop and httptools when they are installed (``pip install 'uvicorn[standard]'``).
    """
    try:
        import uvicorn

        from ..web.app import create_app
    except ImportError as exc:
        from ..errors import MissingExtraError

        raise MissingExtraError(exc.name or "fastapi", "web", "sitewatch serve") from exc
    demo_server = None
    if demo:
        demo_server = build_demo()
        url, archive = demo_server.catalog_url, archive or demo_server.archive
        con = err_console()
        con.print(f"[bold]sitewatch demo[/] catalog in {demo_server.folder}")
        con.print(
            f"  log in at http://{host}:{port}/ as [bold]{demo_server.username}[/] with the "
            f"password [bold]{demo_server.password}[/] (shown only now)"
        )
    else:
        url = state(ctx).database_url or get_settings().catalog_url
        _say_what_is_served(ctx)
    app = create_app(url, archive_root=archive) if workers == 1 else None
    err_console().print(f"serving on http://{host}:{port}/ (API docs at /docs); Ctrl-C stops")
    try:
        if app is not None:
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        else:  # each worker process builds its app from the environment
            os.environ["SITEWATCH_DATABASE_URL"] = url
            if archive is not None:
                os.environ["SITEWATCH_ARCHIVE_DIR"] = str(Path(archive).resolve())
            uvicorn.run(
                "sitewatch.web.app:create_app",
                factory=True,
                workers=workers,
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
            )
    finally:
        if demo_server is not None:
            demo_server.cleanup()
