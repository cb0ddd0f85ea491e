"""Web app latency and throughput at 50 concurrent clients on loopback.

``sitewatch serve`` runs in a subprocess over a catalog of 200 sites (one with features,
observations, change events and two archived chips). A load generator keeps 50 connections busy
(closed loop: each sends its next request when the answer came) for:

* the site list (``GET /api/sites``),
* a site page's API calls (the six GETs the UI makes when a site opens),
* map tiles of a chip: repeats of the tiles around a site (the server's tile cache answers), and
  every tile rendered anew (a second server started with ``SITEWATCH_WEB_TILE_CACHE=0``).

The load generator is ``wrk`` (a C program, one thread, a Lua script for the Bearer token and the
URL list; ``apt-get install wrk``, or ``--install-wrk`` installs it) so that the client costs
little CPU next to the server on the same machine. Without wrk, an asyncio httpx client does the
same (it needs most of a core itself at these rates, so its figures are pessimistic); the output
says which one ran.

Peers measured in the same run: a plain static file from the same server (``/static/index.html``:
Starlette's StaticFiles, no auth, no database) and titiler-style direct rio-tiler reads of the same
tiles in this process (no HTTP). Targets: p95 < 100 ms for the API calls and < 200 ms for a tile.

Besides latency and throughput it reports the server's CPU time per request (user + system of the
uvicorn process and its workers, from /proc): on a machine shared with other jobs that figure is
steadier than the latencies, which depend on how much CPU the other jobs leave.

    .venv/bin/python bench/web.py [--seconds 10] [--concurrency 50] [--workers 1]
    .venv/bin/python bench/web.py --client python      # force the Python client
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, box

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, percentile, print_table

REPO = Path(__file__).resolve().parents[1]
LON, LAT = 126.5, 40.2


def build(root: Path) -> tuple[str, Path, str, list[str]]:
    """A catalog of 200 sites, an archive with two chips of the first site, and an API token."""
    from sitewatch.catalog.models import ChangeEvent, Feature, Observation, Site
    from sitewatch.catalog.store import Catalog
    from sitewatch.imagery.archive import Archive
    from sitewatch.imagery.chips import Chip
    from sitewatch.imagery.scene import Scene
    from sitewatch.web.users import UserStore

    url = f"sqlite:///{root / 'catalog.db'}"
    rng = random.Random(1)
    with Catalog(url, actor="bench") as cat:
        cat.add_site(
            Site(
                id="alpha",
                name="Alpha",
                lon=LON,
                lat=LAT,
                aoi=box(LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01),
            )
        )
        for i in range(199):
            cat.add_site(
                Site(
                    id=f"site-{i:03d}",
                    name=f"Site {i:03d}",
                    lon=rng.uniform(124, 130),
                    lat=rng.uniform(37, 43),
                    tags=("bench",),
                    notes="synthetic benchmark site " * 3,
                )
            )
        for i in range(20):
            cat.add_feature(
                Feature(
                    id=f"f{i}",
                    site_id="alpha",
                    kind="building",
                    geometry=Point(LON + i * 1e-4, LAT),
                )
            )
        for d in range(1, 11):
            cat.add_observation(
                Observation(
                    id=f"o{d}",
                    site_id="alpha",
                    acquired=datetime(2024, 3, d, tzinfo=UTC),
                    sensor="bench",
                )
            )
            cat.add_change_event(
                ChangeEvent(
                    id=f"c{d}",
                    site_id="alpha",
                    before=datetime(2024, 3, d, tzinfo=UTC),
                    after=datetime(2024, 3, d + 1, tzinfo=UTC),
                    method="cva",
                    area_m2=100.0 * d,
                    geometry=box(LON, LAT, LON + 0.001, LAT + 0.001),
                )
            )
        users = UserStore.for_catalog(cat)
        users.add("bench", "bench-password", "analyst")
        _, token = users.create_token("bench", "bench")
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True)
    cx, cy = to_utm.transform(LON, LAT)
    archive = Archive(root / "archive")
    items = []
    for day in (1, 20):
        size, res = 1024, 1.0
        data = np.random.default_rng(day).integers(100, 3000, (3, size, size)).astype("uint16")
        scene = Scene(
            id=f"bench-{day}",
            sensor="bench",
            datetime=datetime(2024, 3, day, tzinfo=UTC),
            assets={"blue": "b", "green": "g", "red": "r"},
        )
        chip = Chip(
            data=data,
            bands=("blue", "green", "red"),
            crs="EPSG:32652",
            transform=Affine(res, 0, round(cx - size / 2), 0, -res, round(cy + size / 2)),
            valid=np.ones((size, size), bool),
            scene=scene,
        )
        items.append(archive.add_chip("alpha", chip).item_id)
    return url, root / "archive", token, items


def tiles_around(n_zooms: tuple[int, ...] = (15, 16, 17, 18)) -> list[tuple[int, int, int]]:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    out = []
    for z in n_zooms:
        c = tms.tile(LON, LAT, z)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                out.append((z, c.x + dx, c.y + dy))
    return out


@dataclass
class Result:
    """Latency percentiles (ms) and throughput of one scenario."""

    p50: float
    p95: float
    p99: float
    rps: float
    requests: int
    cpu_ms: float = float("nan")  # server CPU time per request


# -- load generators ---------------------------------------------------------------------------

_LUA = """
local paths = %(paths)s
local headers = {["Authorization"] = "Bearer %(token)s"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i - 1) %% #paths + 1], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50\\": %%d, \\"p95\\": %%d, " ..
    "\\"p99\\": %%d, \\"status\\": %%d, \\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, " ..
    "\\"timeout\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def wrk_run(
    base: str, token: str, paths: list[str], seconds: float, concurrency: int, folder: Path
) -> Result:
    """``wrk`` with one thread and ``concurrency`` connections for ``seconds``."""
    script = folder / "bench.lua"
    lua_paths = "{" + ", ".join(json.dumps(p) for p in paths) + "}"
    script.write_text(_LUA % {"paths": lua_paths, "token": token})
    cmd = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "60s",
        "-s",
        str(script),
        base,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next((s for s in out.splitlines() if s.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    r = json.loads(line.removeprefix("WRKJSON "))
    errors = {k: r[k] for k in ("status", "connect", "read", "write", "timeout") if r[k]}
    if errors:
        raise RuntimeError(f"{paths[0]}...: wrk saw failed requests {errors}\n{out}")
    return Result(
        r["p50"] / 1000,
        r["p95"] / 1000,
        r["p99"] / 1000,
        r["requests"] / (r["duration_us"] / 1e6),
        r["requests"],
    )


async def _python_load(
    base: str, token: str, paths: list[str], seconds: float, concurrency: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    counter = iter(range(10**9))
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60
    ) as client:
        until = time.monotonic() + seconds

        async def worker() -> None:
            for i in counter:
                if time.monotonic() >= until:
                    return
                path = paths[i % len(paths)]
                t0 = time.perf_counter()
                r = await client.get(path)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:200]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return latencies, wall


def python_run(
    base: str, token: str, paths: list[str], seconds: float, concurrency: int, folder: Path
) -> Result:
    """The asyncio httpx client (the fallback without wrk)."""
    lat, wall = asyncio.run(_python_load(base, token, paths, seconds, concurrency))
    ms = [v * 1000 for v in lat]
    return Result(
        percentile(ms, 50), percentile(ms, 95), percentile(ms, 99), len(ms) / wall, len(ms)
    )


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    url: str, archive: Path, home: Path, workers: int, extra_env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    """``sitewatch serve`` in a subprocess; returns (process, base URL) once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}
    env.update(SITEWATCH_HOME=str(home), SITEWATCH_DATABASE_URL=url, NO_COLOR="1", **extra_env)
    env["PYTHONPATH"] = str(REPO / "src")
    cmd = [sys.executable, "-c", "from sitewatch.cli.main import main; main()", "serve"]
    cmd += ["--port", str(port), "--archive", str(archive)] + (
        ["--workers", str(workers)] if workers != 1 else []
    )
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(base + "/api/config", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(c) for c in children)]


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (uvicorn workers)."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def tree_peak_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its children (uvicorn workers), MB."""
    total = 0.0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024.0
        except OSError:
            continue
    return total or float("nan")


def direct_tiles(archive: Path) -> list[float]:
    """titiler-style direct rio-tiler reads of the same tiles, in this process, one at a time."""
    from rio_tiler.io import Reader

    from sitewatch.imagery.archive import Archive

    direct = []
    for chip in Archive(archive).chips("alpha"):
        with Reader(str(chip.path)) as src:
            for z, x, y in tiles_around():
                if not src.tile_exists(x, y, z):
                    continue
                t0 = time.perf_counter()
                img = src.tile(x, y, z, indexes=(3, 2, 1))
                img.rescale(in_range=((100, 3000),) * 3).render(img_format="PNG")
                direct.append((time.perf_counter() - t0) * 1000)
    return direct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of load per scenario")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument(
        "--install-wrk", action="store_true", help="apt-get install wrk when it is missing"
    )
    args = ap.parse_args()
    if args.install_wrk and shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    if use_wrk and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk, or --client python)")
    run = wrk_run if use_wrk else python_run
    client = "wrk (1 thread)" if use_wrk else "Python asyncio httpx (wrk not found)"
    print(f"load generator: {client}", file=sys.stderr)

    root = Path(tempfile.mkdtemp(prefix="sitewatch-bench-web-"))
    url, archive, token, items = build(root)
    page = [
        "/api/sites/alpha",
        "/api/sites/alpha/features",
        "/api/sites/alpha/observations",
        "/api/sites/alpha/changes",
        "/api/sites/alpha/imagery",
        "/api/measurements?site_id=alpha",
    ]
    tiles = [f"/tiles/alpha/{item}/{z}/{x}/{y}.png" for item in items for z, x, y in tiles_around()]
    c, secs = args.concurrency, args.seconds
    results: dict[str, Result] = {}
    loads: list[float] = []
    server_mb: dict[str, float] = {}
    try:
        proc, base = start_server(url, archive, root, args.workers, {})
        try:
            run(base, token, ["/api/config", *page, "/api/sites", *tiles], 2.0, c, root)  # warm
            scenarios = [
                ("static file (peer)", ["/static/index.html"]),
                ("site list (200 sites)", ["/api/sites"]),
                ("site page API calls", page),
                ("tiles, cached", tiles),
            ]
            for name, paths in scenarios:
                print(f"running: {name} ...", file=sys.stderr, flush=True)
                cpu0 = tree_cpu_s(proc.pid)
                results[name] = r = run(base, token, paths, secs, c, root)
                r.cpu_ms = 1000 * (tree_cpu_s(proc.pid) - cpu0) / r.requests
                loads.append(os.getloadavg()[0])
            # the same API calls one at a time: the server's own cost, without queueing
            for name, paths in (("site list, serial", ["/api/sites"]), ("site page, serial", page)):
                results[name] = run(base, token, paths, min(secs, 5.0), 1, root)
            server_mb["cached"] = tree_peak_mb(proc.pid)
        finally:
            stop_server(proc)
        # every tile rendered: no tile cache on the server (the worst case, a cold map)
        print("running: tiles, every request renders ...", file=sys.stderr, flush=True)
        proc, base = start_server(
            url, archive, root, args.workers, {"SITEWATCH_WEB_TILE_CACHE": "0"}
        )
        try:
            run(base, token, tiles, 2.0, c, root)
            cpu0 = tree_cpu_s(proc.pid)
            results["tiles, rendered (no cache)"] = r = run(base, token, tiles, secs, c, root)
            r.cpu_ms = 1000 * (tree_cpu_s(proc.pid) - cpu0) / r.requests
            loads.append(os.getloadavg()[0])
            server_mb["render"] = tree_peak_mb(proc.pid)
        finally:
            stop_server(proc)
        direct = direct_tiles(archive)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    peer = Result(percentile(direct, 50), percentile(direct, 95), percentile(direct, 99), 0.0, 0)
    results["rio-tiler direct read (peer, serial)"] = peer
    rows = [[k, r.p50, r.p95, r.p99, r.rps or float("nan"), r.cpu_ms] for k, r in results.items()]
    print_table(
        f"web app at {c} concurrent clients (loopback, {args.workers} uvicorn worker(s), "
        f"load generator {client})",
        ["scenario", "p50 ms", "p95 ms", "p99 ms", "req/s", "server CPU ms/req"],
        rows,
    )
    static = results["static file (peer)"]
    print()
    for name in ("site list (200 sites)", "site page API calls"):
        r = results[name]
        print(
            f"{name}: p95 {r.p95:.1f} ms = {r.p95 / static.p95:.2f}x the static-file p95, "
            f"{r.rps:.0f} req/s = {r.rps / static.rps:.2f}x its throughput; "
            f"target p95 < 100 ms: {'met' if r.p95 < 100 else 'MISSED'}"
        )
    for name in ("tiles, cached", "tiles, rendered (no cache)"):
        r = results[name]
        print(
            f"{name}: p95 {r.p95:.1f} ms = {r.p95 / static.p95:.2f}x the static-file p95 "
            f"(p50 {r.p50 / peer.p50:.2f}x a serial direct rio-tiler read); "
            f"target p95 < 200 ms: {'met' if r.p95 < 200 else 'MISSED'}"
        )
    print(
        f"load average (1 min) of this machine during the scenarios: "
        f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    )
    print(
        f"peak memory: bench {peak_rss_mb():.0f} MB, server {server_mb.get('cached', 0):.0f} MB "
        f"(cached run), {server_mb.get('render', 0):.0f} MB (rendering run)"
    )


if __name__ == "__main__":
    main()
