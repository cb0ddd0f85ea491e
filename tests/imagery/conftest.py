"""Factories for imagery tests: generated COGs, static STAC catalogs, a loopback STAC API server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.warp import transform_bounds

# --- generated rasters ---------------------------------------------------------------------------

DEFAULT_CENTRE = (15.0, 45.0)  # lon, lat


def pattern(shape: tuple[int, int], band: int, dtype: str) -> np.ndarray:
    """A smooth, textured test image: different per band, inside the range of ``dtype``."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 0.5 + 0.2 * np.sin(xx / 7.0 + band) * np.cos(yy / 11.0) + 0.1 * np.sin((xx + yy) / 3.0)
    base += 0.05 * band
    if np.dtype(dtype).kind == "f":
        return base.astype(dtype)
    top = 200 if dtype == "uint8" else 10000
    return np.clip(base * top, 1, top).astype(dtype)


@dataclass
class Raster:
    path: Path
    crs: str
    transform: Affine
    shape: tuple[int, int]
    data: np.ndarray
    lonlat_bounds: tuple[float, float, float, float]


RasterFactory = Callable[..., Raster]


@pytest.fixture
def make_raster(tmp_path: Path) -> RasterFactory:
    """Write a GeoTIFF (COG by default) around a lon/lat centre; returns what was written."""

    def make(
        name: str = "image.tif",
        *,
        crs: str = "EPSG:32633",
        dtype: str = "uint16",
        nodata: float | None = None,
        count: int = 4,
        size: int = 128,
        res: float | None = None,
        centre: tuple[float, float] = DEFAULT_CENTRE,
        tags: dict[str, str] | None = None,
        descriptions: list[str] | None = None,
        data: np.ndarray | None = None,
        cog: bool = True,
        folder: Path | None = None,
        no_crs: bool = False,
    ) -> Raster:
        lon, lat = centre
        if res is None:
            res = 0.0001 if crs == "EPSG:4326" else 10.0
        x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        half = size * res / 2.0
        transform = Affine(res, 0.0, x - half, 0.0, -res, y + half)
        if data is None:
            data = np.stack([pattern((size, size), b, dtype) for b in range(count)])
            if nodata is not None:
                data[:, : size // 4, : size // 4] = nodata  # a nodata corner
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        profile: dict[str, Any] = {
            "driver": "COG" if cog else "GTiff",
            "width": data.shape[2],
            "height": data.shape[1],
            "count": data.shape[0],
            "dtype": dtype,
            "crs": crs,
            "transform": transform,
            "compress": "deflate",
        }
        if cog:
            profile["blocksize"] = 128
            profile["overview_count"] = 2
        if nodata is not None:
            profile["nodata"] = nodata
        if no_crs:
            profile.pop("crs")
            profile["driver"] = "GTiff"
            profile.pop("overview_count", None)
            profile.pop("blocksize", None)
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data)
            if tags:
                ds.update_tags(**tags)
            for i, d in enumerate(descriptions or [], start=1):
                ds.set_band_description(i, d)
        with rasterio.open(path) as ds:
            bounds = transform_bounds(crs, "EPSG:4326", *ds.bounds)
        return Raster(path, crs, transform, (data.shape[1], data.shape[2]), data, bounds)

    return make


# --- static STAC catalogs ---------------------------------------------------------------------------


def stac_item(
    raster: Raster,
    item_id: str,
    when: datetime,
    *,
    bands: tuple[str, ...] = ("blue", "green", "red", "nir"),
    cloud: float = 5.0,
    gsd: float = 10.0,
    sun: tuple[float, float] = (150.0, 40.0),
    href: str | None = None,
    extra_assets: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A STAC item dict like the scenario generator writes: one multi-band COG asset."""
    w, s, e, n = raster.lonlat_bounds
    epsg = int(raster.crs.split(":")[1])
    assets: dict[str, Any] = {
        "image": {
            "href": href or raster.path.name,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [{"name": b, "common_name": b} for b in bands],
        }
    }
    assets.update(extra_assets or {})
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
        },
        "bbox": [w, s, e, n],
        "properties": {
            "datetime": when.isoformat().replace("+00:00", "Z"),
            "platform": "synthetic-1",
            "gsd": gsd,
            "proj:epsg": epsg,
            "eo:cloud_cover": cloud,
            "view:sun_azimuth": sun[0],
            "view:sun_elevation": sun[1],
        },
        "links": [],
        "assets": assets,
    }


@pytest.fixture
def make_static_catalog(tmp_path: Path, make_raster: RasterFactory) -> Callable[..., Path]:
    """Write ``catalog.json`` with one item (and one COG) per date; returns the catalog path."""

    def make(
        dates: list[datetime] | None = None,
        *,
        clouds: list[float] | None = None,
        folder: str = "catalog",
        crs: str = "EPSG:32633",
    ) -> Path:
        dates = dates or [datetime(2020, m, 1, 10, tzinfo=UTC) for m in (3, 6, 9)]
        root = tmp_path / folder
        links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
        for i, when in enumerate(dates):
            item_id = f"scene-{when:%Y%m%d}"
            raster = make_raster(f"{item_id}.tif", crs=crs, folder=root / item_id)
            item = stac_item(raster, item_id, when, cloud=(clouds or [5.0] * len(dates))[i])
            item["links"] = [
                {"rel": "root", "href": "../catalog.json"},
                {"rel": "parent", "href": "../catalog.json"},
            ]
            (root / item_id / f"{item_id}.json").write_text(json.dumps(item))
            links.append({"rel": "item", "href": f"./{item_id}/{item_id}.json"})
        catalog = {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "test",
            "description": "generated",
            "links": links,
        }
        (root / "catalog.json").write_text(json.dumps(catalog))
        return root / "catalog.json"

    return make


# --- a loopback HTTP server: files with Range support, and a STAC API -----------------------------


@dataclass
class ServerState:
    root: Path
    items: list[dict[str, Any]] = field(default_factory=list)
    search_mode: str = "ok"  # ok | error | slow
    slow_seconds: float = 2.0
    drop_after: int | None = None  # close file downloads after N bytes (once)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    base: str = ""


class _Handler(BaseHTTPRequestHandler):
    state: ServerState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, data: Any, status: int = 200) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> None:
        self.state.requests.append((self.command, self.path, dict(self.headers)))

    def do_HEAD(self) -> None:
        self._record()
        self._file(head=True)

    def do_GET(self) -> None:
        self._record()
        path = self.path.split("?")[0]
        if path in ("/", ""):
            self._landing()
        elif path == "/conformance":
            self._json({"conformsTo": _CONFORMS})
        elif path == "/search":
            self._search({})
        else:
            self._file(head=False)

    def do_POST(self) -> None:
        self._record()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.split("?")[0] == "/search":
            self._search(body)
        else:
            self._json({"code": "NotFound"}, 404)

    def _landing(self) -> None:
        base = self.state.base
        self._json(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "loopback",
                "description": "test STAC API",
                "conformsTo": _CONFORMS,
                "links": [
                    {"rel": "self", "href": f"{base}/", "type": "application/json"},
                    {"rel": "root", "href": f"{base}/", "type": "application/json"},
                    {
                        "rel": "search",
                        "href": f"{base}/search",
                        "type": "application/geo+json",
                        "method": "POST",
                    },
                    {
                        "rel": "search",
                        "href": f"{base}/search",
                        "type": "application/geo+json",
                        "method": "GET",
                    },
                    {"rel": "conformance", "href": f"{base}/conformance"},
                ],
            }
        )

    def _search(self, body: dict[str, Any]) -> None:
        if self.state.search_mode == "error":
            self._json({"code": "InternalError", "description": "database is down"}, 500)
            return
        if self.state.search_mode == "slow":
            time.sleep(self.state.slow_seconds)
        items = self.state.items
        if "bbox" in body:
            w, s, e, n = body["bbox"]
            items = [
                i
                for i in items
                if i["bbox"][0] <= e
                and w <= i["bbox"][2]
                and i["bbox"][1] <= n
                and s <= i["bbox"][3]
            ]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._json({"type": "FeatureCollection", "features": items, "links": []})

    def _file(self, *, head: bool) -> None:
        target = (self.state.root / self.path.split("?")[0].lstrip("/")).resolve()
        if not target.is_file() or self.state.root.resolve() not in target.parents:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = target.read_bytes()
        start, end = 0, len(data) - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a) if a else 0
            end = min(int(b), len(data) - 1) if b else len(data) - 1
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        chunk = data[start : end + 1]
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Length", str(len(chunk)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if head:
            return
        drop = self.state.drop_after
        try:
            if drop is not None and len(chunk) > drop:
                self.state.drop_after = None
                self.wfile.write(chunk[:drop])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass


_CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
]


@pytest.fixture
def stac_server(tmp_path: Path) -> Iterator[ServerState]:
    """A STAC API and file server on 127.0.0.1 (files served from ``state.root``)."""
    root = tmp_path / "served"
    root.mkdir()
    state = ServerState(root=root)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- the CLI ------------------------------------------------------------------------------------------


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def sw(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``sitewatch ARGS...`` in-process; returns exit code, stdout and stderr."""
    from sitewatch.cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
