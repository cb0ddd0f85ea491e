"""Crash consistency: SIGKILL in the middle of an import, an archive fetch and a monitor run.

Each test starts ``sitewatch`` in a subprocess, waits until it is visibly writing, kills it with
SIGKILL, checks that what is on disk is consistent (catalog all-or-nothing, archive items intact),
then runs the same command again to completion and checks that it resumed without duplicates.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from sitewatch.catalog.models import Site
from sitewatch.catalog.store import Catalog
from sitewatch.imagery.archive import Archive

from ..conftest import Result, Runner
from .conftest import cli_env, spawn, write_scenes, write_sites_csv

N_SITES = 6_000
TIMEOUT_S = 60.0


def _wait_for(
    cond: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(
                f"the process ended (rc {proc.returncode}) before {what}:\n{log.read_text()}"
            )
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    assert proc.poll() is None, "the process had already finished: nothing was interrupted"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _writing(url: str) -> Callable[[], bool]:
    """Whether another process holds an open write transaction on the catalog."""
    if url.startswith("sqlite"):
        wal = Path(url.removeprefix("sqlite:///") + "-wal")
        return lambda: wal.is_file() and wal.stat().st_size > 50_000
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    q = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
    )

    def check() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(q).scalar())

    return check


def _resume(sw: Runner, *args: str) -> Result:
    """Run the same command again to completion, in this process (saves a start-up)."""
    res = sw(*args)
    assert res.code == 0, res.err
    return res


def test_import_killed_midway_leaves_nothing_then_completes(
    catalog_url: str, home: Path, tmp_path: Path, sw: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITEWATCH_DATABASE_URL", catalog_url)
    csv_path = write_sites_csv(tmp_path / "big.csv", N_SITES)
    env = cli_env(home, SITEWATCH_DATABASE_URL=catalog_url)
    with Catalog(catalog_url) as cat:
        cat.add_site(Site(id="existing", name="Existing", lon=1.0, lat=2.0))
        before = cat.counts()
    proc = spawn(["sites", "import", str(csv_path)], env, tmp_path / "kill.log")
    _wait_for(_writing(catalog_url), proc, tmp_path / "kill.log", "the import started writing")
    _kill(proc)
    with Catalog(catalog_url) as cat:
        assert cat.counts() == before, "a killed import left part of its rows"
    assert _resume(sw, "sites", "import", str(csv_path), "--json").json()["added"] == N_SITES
    with Catalog(catalog_url) as cat:
        counts = cat.counts()
        assert counts["sites"] == before["sites"] + N_SITES
        assert counts["history"] == before["history"] + N_SITES  # one import note per site
        ids = {s.id for s in cat.query_sites(limit=N_SITES + 10)}
    assert len(ids) == N_SITES + 1


def test_fetch_killed_midway_leaves_intact_chips_then_resumes(
    home: Path, tmp_path: Path, sw: Runner
) -> None:
    n = 24
    scenes = write_scenes(tmp_path / "scenes", n, size=48)
    env = cli_env(home)
    args = [
        "imagery",
        "fetch",
        "gen",
        "--bbox",
        "126.106,38.583,126.110,38.587",
        "--source",
        str(scenes),
        "--resolution",
        "10",
    ]
    archive = Archive(home / "archive")
    site_dir = archive.site_dir("gen")

    def some_stored() -> bool:
        return site_dir.is_dir() and len(list(site_dir.glob("*/*.json"))) >= 3

    proc = spawn(args, env, tmp_path / "kill.log")
    _wait_for(some_stored, proc, tmp_path / "kill.log", "chips were stored")
    _kill(proc)
    chips = archive.chips("gen")  # every item that exists is readable
    assert 0 < len(chips) < n
    assert archive.verify("gen") == [], "a chip file does not match its item after the kill"
    leftovers = sorted(p.name for p in home.rglob(".*.tmp"))
    out = _resume(sw, *args, "--json").json()
    assert len(out["existing"]) == len(chips)  # the stored chips were not fetched again
    assert len(out["stored"]) == n - len(chips)
    final = archive.chips("gen")
    assert len(final) == n and len({c.item_id for c in final}) == n
    assert archive.verify("gen") == []
    collection = json.loads((site_dir / "collection.json").read_text())
    assert len([ln for ln in collection["links"] if ln["rel"] == "item"]) == n
    print(f"fetch: killed after {len(chips)}/{n} chips; temp files left: {len(leftovers)}")


def test_monitor_killed_midway_resumes_without_duplicates(
    catalog_url: str, home: Path, tmp_path: Path, sw: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITEWATCH_DATABASE_URL", catalog_url)
    n_sites, n_scenes = 3, 4
    scenes = write_scenes(tmp_path / "scenes", n_scenes, size=96)
    env = cli_env(home, SITEWATCH_DATABASE_URL=catalog_url)
    with Catalog(catalog_url) as cat:
        for k in range(n_sites):
            cat.add_site(Site(id=f"s{k}", name=f"S{k}", lon=126.107 + 0.0007 * k, lat=38.585))
    args = ["monitor", "run", "--all", "--source", str(scenes), "--size", "500"]

    engine = sa.create_engine(catalog_url, poolclass=sa.pool.NullPool)

    def observations() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM observations")).scalar() or 0)

    proc = spawn(args, env, tmp_path / "kill.log")
    _wait_for(lambda: observations() > 0, proc, tmp_path / "kill.log", "a site was recorded")
    _kill(proc)
    with Catalog(catalog_url) as cat:
        per_site = {f"s{k}": len(cat.list_observations(f"s{k}")) for k in range(n_sites)}
    assert set(per_site.values()) <= {0, n_scenes}, f"a site was half recorded: {per_site}"
    done = sum(1 for v in per_site.values() if v)
    assert 0 < done < n_sites, per_site
    _resume(sw, *args)
    with Catalog(catalog_url) as cat:
        counts = cat.counts()
        obs = [o for k in range(n_sites) for o in cat.list_observations(f"s{k}")]
        events = cat.list_change_events()
        alerts = cat.list_alerts()
    assert len(obs) == n_sites * n_scenes
    assert len({(o.site_id, o.acquired) for o in obs}) == len(obs), "duplicate observations"
    assert len({(e.site_id, e.before, e.after) for e in events}) == len(events)
    assert len({a.key for a in alerts}) == len(alerts)
    assert counts["observations"] == len(obs)
    archive = Archive(home / "archive")
    for k in range(n_sites):
        assert archive.verify(f"s{k}") == []
    print(f"monitor: killed after {done}/{n_sites} sites; resumed to {len(obs)} observations")
