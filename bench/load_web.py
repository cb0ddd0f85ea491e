"""Load on the web service: N concurrent clients on loopback for T seconds, reads and writes mixed.

Starts ``sitewatch serve`` (uvicorn) in a subprocess over a fresh catalog (SQLite by default, or
``--db postgresql://...``), then runs asyncio httpx clients, each with its own Bearer token, doing
a mix of reads (site list, one site, its observations) and writes (create a site, record an
observation, edit its own site). After the run it stops the server and counts in the catalog:
every write the server acknowledged must be there (created sites, observations, the last edit of
each site). Prints counts and latencies; exits 1 on any failed request or lost write.

Peer: the same mix with a single client for a short while, measured first in the same run
(throughput ratio = N clients / 1 client). Peak memory: the server's peak RSS (VmHWM) and this
process's.

    .venv/bin/python bench/load_web.py                 # 50 clients, 60 s, SQLite
    .venv/bin/python bench/load_web.py --clients 50 --duration 60 --db postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SEED_SITES = 20


@dataclass
class Tally:
    """What one phase of the load did and saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"read": [], "write": []})
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    sites: set[str] = field(default_factory=set)
    observations: dict[str, set[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0

    @property
    def writes(self) -> int:
        return len(self.latencies["write"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(folder: Path, db: str | None, clients: int) -> tuple[str, list[str]]:
    """A catalog with seed sites and one analyst token per client."""
    sys.path.insert(0, str(REPO / "src"))
    from argon2 import PasswordHasher

    from sitewatch.catalog.models import Site
    from sitewatch.catalog.store import Catalog
    from sitewatch.web.users import UserStore

    url = db or f"sqlite:///{folder / 'catalog.db'}"
    tokens = []
    with Catalog(url, actor="load") as cat:
        if db:
            cat.wipe()
        for i in range(SEED_SITES):
            cat.add_site(Site(id=f"seed-{i}", name=f"Seed {i}", lon=126.0 + i / 100, lat=39.0))
        store = UserStore.for_catalog(cat, hasher=PasswordHasher(time_cost=1, memory_cost=1024))
        for k in range(clients):
            store.add(f"client{k}", f"password-of-client-{k}", "analyst")
            tokens.append(store.create_token(f"client{k}", "load")[1])
    return url, tokens


def start_server(url: str, home: Path, port: int) -> subprocess.Popen[bytes]:
    """``sitewatch serve`` in a subprocess; returns once it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}
    env.update(SITEWATCH_HOME=str(home), SITEWATCH_DATABASE_URL=url, NO_COLOR="1")
    env["PYTHONPATH"] = str(REPO / "src")
    with (home / "server.log").open("wb") as log:  # the server keeps its own descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from sitewatch.cli.main import main; main()",
                "serve",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{(home / 'server.log').read_text()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=1.0)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 60 s")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def _client(
    k: int, base: str, token: str, until: float, tally: Tally, rng: random.Random, phase: int
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    mine: list[tuple[str, int]] = []  # (site id, version) created by this client
    n = 0
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60.0) as http:
        while time.monotonic() < until:
            n += 1
            roll = rng.random()
            seed = f"seed-{rng.randrange(SEED_SITES)}"
            if roll < 0.25:
                kind, method, path, body = "read", "GET", "/api/sites?limit=50", None
            elif roll < 0.45:
                kind, method, path, body = "read", "GET", f"/api/sites/{seed}", None
            elif roll < 0.60:
                kind, method, path, body = "read", "GET", f"/api/sites/{seed}/observations", None
            elif roll < 0.75 or not mine:
                sid = f"p{phase}-c{k}-{n}"
                kind, method, path = "write", "POST", "/api/sites"
                body = {"id": sid, "name": f"Client {k} site {n}", "lon": 126.5, "lat": 39.5}
            elif roll < 0.90:
                kind, method, path = "write", "POST", f"/api/sites/{seed}/observations"
                body = {"acquired": "2024-05-01T02:00:00Z", "sensor": "load", "text": f"{k}/{n}"}
            else:
                i = rng.randrange(len(mine))
                sid, version = mine[i]
                kind, method, path = "write", "PATCH", f"/api/sites/{sid}"
                body = {"version": version, "name": f"edited {k}/{n}"}
            t0 = time.perf_counter()
            try:
                resp = await http.request(method, path, json=body)
            except httpx.HTTPError as exc:
                tally.failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
                continue
            finally:
                tally.requests += 1
            tally.statuses[resp.status_code] += 1
            if resp.status_code >= 400:
                tally.failures.append(f"{method} {path}: HTTP {resp.status_code} {resp.text[:200]}")
                continue
            tally.latencies[kind].append(time.perf_counter() - t0)
            if kind == "write":
                data: Any = resp.json()
                if method == "POST" and path == "/api/sites":
                    tally.sites.add(data["id"])
                    tally.names[data["id"]] = data["name"]
                    mine.append((data["id"], int(data["version"])))
                elif method == "POST":
                    tally.observations.setdefault(seed, set()).add(data["id"])
                else:
                    tally.names[data["id"]] = data["name"]
                    mine[i] = (data["id"], int(data["version"]))


async def load(base: str, tokens: list[str], seconds: float, seed: int = 0) -> Tally:
    """Run one client per token for ``seconds``."""
    tally = Tally()
    until = time.monotonic() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(
        *(
            _client(k, base, tok, until, tally, random.Random(seed * 1000 + k), seed)
            for k, tok in enumerate(tokens)
        )
    )
    tally.seconds = time.perf_counter() - t0
    return tally


def check(url: str, tallies: list[Tally]) -> list[str]:
    """Acknowledged writes that are not in the catalog."""
    from sitewatch.catalog.store import Catalog

    lost: list[str] = []
    with Catalog(url, actor="check") as cat:
        stored = {s.id: s for s in cat.query_sites()}
        for tally in tallies:
            lost += [f"site {sid}" for sid in tally.sites if sid not in stored]
            for sid, name in tally.names.items():
                if sid in stored and stored[sid].name != name:
                    lost.append(f"edit of {sid}: {stored[sid].name!r} != acknowledged {name!r}")
        for sid in {s for t in tallies for s in t.observations}:
            have = {o.id for o in cat.list_observations(sid)}
            for tally in tallies:
                lost += [
                    f"observation {o}" for o in tally.observations.get(sid, ()) if o not in have
                ]
    return lost


def _ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, tally: Tally) -> None:
    rate = tally.requests / tally.seconds if tally.seconds else 0.0
    print(
        f"{name}: {tally.requests} requests in {tally.seconds:.1f} s = {rate:.0f} req/s; "
        f"{len(tally.latencies['read'])} reads, {tally.writes} writes acknowledged "
        f"({len(tally.sites)} sites created, "
        f"{sum(len(v) for v in tally.observations.values())} observations); "
        f"failed requests: {len(tally.failures)}"
    )
    for kind, values in tally.latencies.items():
        if values:
            print(
                f"  {kind:5s} latency ms: p50 {_ms(values, 0.5):.1f}  p95 {_ms(values, 0.95):.1f}  "
                f"p99 {_ms(values, 0.99):.1f}  max {1000 * max(values):.1f}  "
                f"mean {1000 * statistics.fmean(values):.1f}"
            )
    print(f"  status codes: {dict(sorted(tally.statuses.items()))}")


def run(clients: int, duration: float, db: str | None, peer_seconds: float) -> int:
    """The whole benchmark; returns the exit code."""
    with tempfile.TemporaryDirectory(prefix="sitewatch-load-") as tmp:
        folder = Path(tmp)
        url, tokens = prepare(folder, db, clients)
        port = _free_port()
        server = start_server(url, folder, port)
        base = f"http://127.0.0.1:{port}"
        try:
            peer = (
                asyncio.run(load(base, tokens[:1], peer_seconds, seed=1)) if peer_seconds else None
            )
            main = asyncio.run(load(base, tokens, duration, seed=2))
            server_peak = peak_rss_mb(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        print(f"load_web: {clients} clients x {duration:g} s on loopback, {backend} catalog")
        if peer is not None:
            report("peer (1 client)", peer)
        report(f"{clients} clients", main)
        if peer is not None and peer.requests:
            ratio = (main.requests / main.seconds) / (peer.requests / peer.seconds)
            print(f"throughput ratio {clients} clients / 1 client: {ratio:.2f}x")
        tallies = [t for t in (peer, main) if t is not None]
        lost = check(url, tallies)
        acked = sum(t.writes for t in tallies)
        print(f"writes acknowledged {acked}, lost {len(lost)}")
        print(
            f"peak memory: server {server_peak:.0f} MB, "
            f"load generator {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        )
        failures = [f for t in tallies for f in t.failures]
        for line in failures[:10] + lost[:10]:
            print(f"  ! {line}")
        return 1 if failures or lost or not main.writes else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--db", help="catalog URL (default: a fresh SQLite file); it is wiped")
    parser.add_argument(
        "--peer-seconds", type=float, default=10.0, help="seconds of the 1-client peer (0: none)"
    )
    args = parser.parse_args(argv)
    return run(args.clients, args.duration, args.db, args.peer_seconds)


if __name__ == "__main__":
    sys.exit(main())
