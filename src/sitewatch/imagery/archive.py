"""The local imagery archive: site chips as COGs with STAC items, checksums, resumable downloads.

Layout under ``Settings.archive_path``::

    catalog.json                              root STAC catalog (one child per site)
    <site>/collection.json                    STAC collection of the site's chips
    <site>/SHA256SUMS                         ``sha256sum -c`` manifest of every file of the site
    <site>/<item>/<item>.json                 STAC item (eo:bands, proj:*, view:*, file:checksum)
    <site>/<item>/<item>.tif                  the chip, a Cloud-Optimized GeoTIFF
    <site>/<item>/<item>_mask.tif             0 = no data, 1 = clear, 2 = cloud

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so a crash never leaves a half-written file under its final name. Any STAC tool
(pystac, stac-browser, odc-stac) can read the archive; so can :class:`~sitewatch.imagery.sources.stac.StacSource`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import requests
from rasterio.errors import RasterioError
from shapely.geometry import box, mapping

from ..errors import ArchiveError, ImageryError, SourceError, gdal_text
from ..files import atomic_path, sha256_file
from .chips import Chip, ChipGrid, CloudMethod, read_chip
from .scene import (
    DN_OFFSETS,
    REFLECTANCE,
    Scene,
    providers_credit,
    scene_credit,
    sensor_credit,
)
from .sources.base import HrefModifier, ImagerySource, SceneReader

__all__ = [
    "Archive",
    "ArchivedChip",
    "FetchResult",
    "Progress",
    "cache_scene",
    "download",
    "sha256_file",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""A progress callback: (done, total)."""

_STAC_VERSION = "1.0.0"
_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
]


def _atomic(dest: Path) -> contextlib.AbstractContextManager[Path]:
    """The archive's own files: missing folders are created, temporary files end in ``.tmp``."""
    return atomic_path(dest, ".tmp", parents=True)


def _write_json(dest: Path, data: Any) -> None:
    with _atomic(dest) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


# --- downloads ----------------------------------------------------------------------------------


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    session: requests.Session | None = None,
    retries: int = 4,
    backoff: float = 0.5,
    timeout: float = 60.0,
    chunk: int = 1 << 16,
    progress: Progress | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` with HTTP Range requests.

    Connection errors, timeouts and 5xx/429 answers are retried ``retries`` times with
    exponential backoff (``backoff * 2**n`` s). The file appears under ``dest`` only when complete
    (and, when ``sha256`` is given, when its checksum matches).
    """
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    http = session or requests.Session()
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with http.get(url, headers=headers, stream=True, timeout=timeout) as resp:
                if resp.status_code == 416 and have:  # already complete
                    break
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise requests.HTTPError(f"HTTP {resp.status_code}", response=resp)
                if resp.status_code >= 400:
                    raise SourceError(
                        f"download of {url} failed: HTTP {resp.status_code} {resp.reason}; "
                        "check the URL or the signing hook"
                    )
                resumed = resp.status_code == 206
                total = _total_size(resp, have if resumed else 0)
                mode = "ab" if resumed else "wb"
                done = have if resumed else 0
                with part.open(mode) as fh:
                    for block in resp.iter_content(chunk):
                        fh.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total or done)
                if total is not None and done < total:
                    raise requests.ConnectionError(f"connection closed at {done} of {total} bytes")
            break
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.HTTPError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            attempt += 1
            if attempt > retries:
                raise SourceError(
                    f"download of {url} failed after {retries} retries: {exc}; the partial file "
                    f"{part} is kept and the next try resumes it"
                ) from exc
            wait = backoff * 2 ** (attempt - 1)
            log.info("download of %s: %s; retry %d in %.1f s", url, exc, attempt, wait)
            time.sleep(wait)
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256:
            part.unlink(missing_ok=True)
            raise SourceError(
                f"download of {url}: checksum mismatch (expected sha256 {sha256}, got {got}); "
                "the partial file was removed, try again"
            )
    os.replace(part, dest)
    return dest


def _total_size(resp: requests.Response, offset: int) -> int | None:
    crange = resp.headers.get("Content-Range")
    if crange and "/" in crange:
        tail = crange.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else None
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _checksum_of(scene: Scene, band: str) -> str | None:
    checksums = scene.properties.get("file:checksums")
    if isinstance(checksums, dict):
        value = checksums.get(scene.assets[band])
        if isinstance(value, str) and value.startswith("1220"):
            return value[4:]
    return None


def cache_scene(
    scene: Scene,
    cache_dir: Path,
    *,
    sign: HrefModifier | None = None,
    progress: Progress | None = None,
    **download_options: Any,
) -> Scene:
    """Download the remote assets of a scene into ``cache_dir``; the scene with local hrefs."""
    from dataclasses import replace

    local: dict[str, str] = {}
    for band, href in scene.assets.items():
        if "://" not in href or href.startswith("file://"):
            local[band] = href.removeprefix("file://")
            continue
        name = _safe(href.split("?")[0].rsplit("/", 1)[-1])  # no "..": stays in the cache
        dest = cache_dir / _safe(scene.id) / name
        url = sign(href) if sign else href
        download(url, dest, sha256=_checksum_of(scene, band), progress=progress, **download_options)
        local[band] = str(dest)
    return replace(scene, assets=local)


# --- the archive ----------------------------------------------------------------------------------


def _safe(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "scene"
    return out if out.strip(".") else "_" + out  # "." and ".." name no folder of the archive


@dataclass(frozen=True)
class ArchivedChip:
    """One chip in the archive."""

    site_id: str
    item_id: str
    scene_id: str
    datetime: datetime
    sensor: str
    bands: tuple[str, ...]
    resolution: float
    path: Path
    item_path: Path
    sha256: str
    coverage: float | None
    cloud_fraction: float | None
    credit: str = ""
    """Who figures credit for its pixels ("Image © ..."); "" when no one is recorded."""

    @property
    def mask_path(self) -> Path:
        """The chip's mask (0 = no data, 1 = clear, 2 = cloud)."""
        return self.path.with_name(f"{self.item_id}_mask.tif")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the ``--json`` output of ``imagery ls`` and ``fetch``)."""
        return {
            "site": self.site_id,
            "item": self.item_id,
            "scene": self.scene_id,
            "datetime": self.datetime.isoformat(),
            "sensor": self.sensor,
            "bands": list(self.bands),
            "resolution": self.resolution,
            "path": str(self.path),
            "item_path": str(self.item_path),
            "sha256": self.sha256,
            "coverage": self.coverage,
            "cloud_fraction": self.cloud_fraction,
            "credit": self.credit,
        }


@dataclass(frozen=True)
class FetchResult:
    """What a fetch stored, found already there, and left out: ``failed`` the scenes that could
    not be read (scene id, reason: an asset gone from the server, a damaged file), ``empty`` those
    read without data over the chip (their footprint touches the site's box but their pixels do
    not, or no more than ``min_coverage``); ``recut`` names the stored chips that replaced one cut
    on another grid (the site's extent changed) or without a band now asked for."""

    stored: tuple[ArchivedChip, ...]
    existing: tuple[ArchivedChip, ...]
    failed: tuple[tuple[str, str], ...]
    recut: tuple[str, ...] = ()
    empty: tuple[tuple[str, str], ...] = ()

    @property
    def left_out(self) -> tuple[tuple[str, str], ...]:
        """Every scene left out, unreadable or empty (scene id, reason)."""
        return self.failed + self.empty


class Archive:
    """A folder of site chips as a static STAC catalog."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    @property
    def catalog_path(self) -> Path:
        """The root ``catalog.json``."""
        return self.root / "catalog.json"

    def site_dir(self, site_id: str) -> Path:
        """The folder of one site."""
        return self.root / _safe(site_id)

    def item_id(self, scene: Scene, grid: ChipGrid) -> str:
        """The archive id of a scene's chip at a grid's resolution."""
        return f"{_safe(scene.id)}-{grid.resolution:g}m"

    # --- writing ----------------------------------------------------------------------------

    def add_chip(
        self, site_id: str, chip: Chip, *, source: str = "", credit: str | None = None
    ) -> ArchivedChip:
        """Store a chip (COG + mask + STAC item) and refresh the site's collection and manifest.

        ``credit``: who figures credit for its pixels (default: :func:`scene_credit`)."""
        item_id = self.item_id(chip.scene, chip.grid)
        folder = self.site_dir(site_id) / item_id
        tif = folder / f"{item_id}.tif"
        mask_tif = folder / f"{item_id}_mask.tif"
        try:
            self._write_cog(tif, chip)
            self._write_mask(mask_tif, chip)
        except (RasterioError, OSError) as exc:
            raise ArchiveError(
                f"cannot write the chip {tif}: {gdal_text(exc)}; check free space and permissions"
            ) from exc
        credit = credit or scene_credit(chip.scene)
        item = self._item(site_id, item_id, chip, tif, mask_tif, source, credit)
        _write_json(folder / f"{item_id}.json", item)
        self._refresh_site(site_id)
        return self._archived(site_id, folder / f"{item_id}.json")

    def _write_cog(self, dest: Path, chip: Chip) -> None:
        scene = chip.scene
        profile = {
            "driver": "COG",
            "width": chip.data.shape[2],
            "height": chip.data.shape[1],
            "count": chip.data.shape[0],
            "dtype": chip.data.dtype.name,
            "crs": chip.crs,
            "transform": chip.transform,
            "compress": "deflate",
            "blocksize": 256,
        }
        if chip.nodata is not None:
            profile["nodata"] = chip.nodata
        tags = {
            "datetime": scene.datetime.isoformat(),
            "sensor": scene.sensor,
            "scene_id": scene.id,
        }
        for key in ("sun_azimuth", "sun_elevation", "off_nadir", "view_azimuth", "cloud_cover"):
            value = getattr(scene, key)
            if value is not None:
                tags[key] = str(value)
        with _atomic(dest) as tmp, rasterio.open(tmp, "w", **profile) as ds:
            ds.write(chip.data)
            ds.update_tags(**tags)
            for i, band in enumerate(chip.bands, start=1):
                ds.set_band_description(i, band)

    def _write_mask(self, dest: Path, chip: Chip) -> None:
        mask = chip.valid.astype(np.uint8)
        if chip.cloud is not None:
            mask[chip.cloud & chip.valid] = 2
        profile = {
            "driver": "COG",
            "width": mask.shape[1],
            "height": mask.shape[0],
            "count": 1,
            "dtype": "uint8",
            "crs": chip.crs,
            "transform": chip.transform,
            "compress": "deflate",
            "blocksize": 256,
        }
        with _atomic(dest) as tmp, rasterio.open(tmp, "w", **profile) as ds:
            ds.write(mask, 1)
            ds.set_band_description(1, "mask")
            ds.update_tags(values="0=nodata 1=clear 2=cloud")

    def _item(
        self,
        site_id: str,
        item_id: str,
        chip: Chip,
        tif: Path,
        mask_tif: Path,
        source: str,
        credit: str | None = None,
    ) -> dict[str, Any]:
        scene = chip.scene
        grid = chip.grid
        w, s, e, n = grid.lonlat_bbox()
        geom = mapping(box(w, s, e if e >= w else e + 360.0, n))
        t = chip.transform
        props: dict[str, Any] = {
            "datetime": scene.datetime.isoformat().replace("+00:00", "Z"),
            "platform": scene.sensor,
            "gsd": grid.resolution,
            "proj:code": grid.crs,
            "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "proj:shape": [grid.height, grid.width],
            "sitewatch:site": site_id,
            "sitewatch:scene": scene.id,
            "sitewatch:source": source,
            # STAC common metadata: any STAC tool, and a fetch from this archive, credit it
            **({"providers": [{"name": credit, "roles": ["licensor"]}]} if credit else {}),
            "sitewatch:coverage": round(chip.coverage, 6),
            "sitewatch:scene_gsd": scene.gsd,
        }
        if scene.properties.get(DN_OFFSETS):  # provenance: the chip's DN are harmonised
            props["sitewatch:dn_offsets_applied"] = dict(scene.properties[DN_OFFSETS])
        if scene.properties.get(REFLECTANCE):
            props[REFLECTANCE] = dict(scene.properties[REFLECTANCE])
        epsg = rasterio.crs.CRS.from_user_input(grid.crs).to_epsg()
        if epsg:
            props["proj:epsg"] = epsg
        if chip.cloud_fraction is not None:
            props["sitewatch:cloud_fraction"] = round(chip.cloud_fraction, 6)
        for key, name in (
            ("cloud_cover", "eo:cloud_cover"),
            ("sun_azimuth", "view:sun_azimuth"),
            ("sun_elevation", "view:sun_elevation"),
            ("off_nadir", "view:off_nadir"),
            ("view_azimuth", "view:azimuth"),
        ):
            value = getattr(scene, key)
            if value is not None:
                props[name] = value
        from ._bands import COMMON_BANDS

        eo = [{"name": b, **({"common_name": b} if b in COMMON_BANDS else {})} for b in chip.bands]
        return {
            "type": "Feature",
            "stac_version": _STAC_VERSION,
            "stac_extensions": _EXTENSIONS,
            "id": item_id,
            "collection": _safe(site_id),
            "geometry": geom,
            "bbox": [w, s, e, n],
            "properties": props,
            "links": [
                {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../collection.json", "type": "application/json"},
                {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            ],
            "assets": {
                "image": {
                    "href": f"./{tif.name}",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "roles": ["data"],
                    "eo:bands": eo,
                    "file:checksum": "1220" + sha256_file(tif),
                    "file:size": tif.stat().st_size,
                },
                "mask": {
                    "href": f"./{mask_tif.name}",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "roles": ["cloud", "data-mask"],
                    "description": "0 = no data, 1 = clear, 2 = cloud",
                    "file:checksum": "1220" + sha256_file(mask_tif),
                    "file:size": mask_tif.stat().st_size,
                },
            },
        }

    def _item_paths(self, site_id: str) -> list[Path]:
        folder = self.site_dir(site_id)
        if not folder.is_dir():
            return []
        return sorted(
            p / f"{p.name}.json" for p in folder.iterdir() if (p / f"{p.name}.json").is_file()
        )

    def _refresh_site(self, site_id: str) -> None:
        folder = self.site_dir(site_id)
        items = [json.loads(p.read_text(encoding="utf-8")) for p in self._item_paths(site_id)]
        bboxes = [i["bbox"] for i in items] or [[-180.0, -90.0, 180.0, 90.0]]
        times = sorted(i["properties"]["datetime"] for i in items)
        collection = {
            "type": "Collection",
            "stac_version": _STAC_VERSION,
            "id": _safe(site_id),
            "description": f"sitewatch chips of site {site_id}",
            "license": "other",
            "extent": {
                "spatial": {
                    "bbox": [
                        [
                            min(b[0] for b in bboxes),
                            min(b[1] for b in bboxes),
                            max(b[2] for b in bboxes),
                            max(b[3] for b in bboxes),
                        ]
                    ]
                },
                "temporal": {
                    "interval": [[times[0] if times else None, times[-1] if times else None]]
                },
            },
            "links": [
                {"rel": "root", "href": "../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
                *(
                    {
                        "rel": "item",
                        "href": f"./{i['id']}/{i['id']}.json",
                        "type": "application/geo+json",
                    }
                    for i in items
                ),
            ],
        }
        _write_json(folder / "collection.json", collection)
        lines = []
        for p in self._item_paths(site_id):
            for f in sorted(p.parent.glob("*.tif")):
                lines.append(f"{sha256_file(f)}  {f.relative_to(folder).as_posix()}")
        with _atomic(folder / "SHA256SUMS") as tmp:
            tmp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        self._refresh_root()

    def _refresh_root(self) -> None:
        sites = sorted(p.name for p in self.root.iterdir() if (p / "collection.json").is_file())
        catalog = {
            "type": "Catalog",
            "stac_version": _STAC_VERSION,
            "id": "sitewatch-archive",
            "description": "sitewatch local imagery archive: site chips as COGs",
            "links": [
                {"rel": "root", "href": "./catalog.json", "type": "application/json"},
                *(
                    {"rel": "child", "href": f"./{s}/collection.json", "type": "application/json"}
                    for s in sites
                ),
            ],
        }
        _write_json(self.catalog_path, catalog)

    # --- reading ----------------------------------------------------------------------------

    def _archived(self, site_id: str, item_path: Path) -> ArchivedChip:
        try:
            item = json.loads(item_path.read_text(encoding="utf-8"))
            props = item["properties"]
            image = item["assets"]["image"]
            when = datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
            sensor = props.get("platform", "unknown")
            chip = ArchivedChip(
                site_id=site_id,
                item_id=item["id"],
                scene_id=props.get("sitewatch:scene", item["id"]),
                datetime=when,
                sensor=sensor,
                bands=tuple(b["name"] for b in image.get("eo:bands", [])),
                resolution=float(props.get("gsd", 0.0)),
                path=item_path.parent / image["href"].removeprefix("./"),
                item_path=item_path,
                sha256=str(image.get("file:checksum", ""))[4:],
                coverage=props.get("sitewatch:coverage"),
                cloud_fraction=props.get("sitewatch:cloud_fraction"),
                # chips archived before credits were kept: their sensor's public programme
                credit=providers_credit(props.get("providers"))
                or sensor_credit(sensor, when.year)
                or "",
            )
            self._inside(item_path)
            self._inside(chip.path)
            return chip
        except ArchiveError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArchiveError(
                f"archive item {item_path} is unreadable ({exc}); delete its folder and fetch again"
            ) from exc

    def _inside(self, path: Path) -> None:
        """Refuse a path that leaves the archive (``..`` or absolute hrefs, symlinks out)."""
        root = self.root.resolve()
        if not path.resolve().is_relative_to(root):
            raise ArchiveError(
                f"archive path {path} resolves to {path.resolve()}, outside the archive {root} "
                "(a '..' or absolute href, or a symlink); delete it and fetch the chip again"
            )

    def load_chip(self, site_id: str, scene: Scene, grid: ChipGrid) -> Chip | None:
        """The stored chip of ``scene`` on ``grid`` (pixels, masks and the given scene), or None
        when it is not stored or was cut on another grid (the site's extent changed since)."""
        item_id = self.item_id(scene, grid)
        folder = self.site_dir(site_id) / item_id
        tif, mask_tif = folder / f"{item_id}.tif", folder / f"{item_id}_mask.tif"
        if not (tif.is_file() and mask_tif.is_file()):
            return None
        try:
            with rasterio.open(tif) as ds:
                if not _on_grid(ds, grid):
                    return None
                data = ds.read()
                bands = tuple(d or f"b{i}" for i, d in enumerate(ds.descriptions, start=1))
                nodata = ds.nodata
            with rasterio.open(mask_tif) as ds:
                mask = ds.read(1)
        except RasterioError as exc:
            raise ArchiveError(
                f"cannot read the archived chip {tif}: {gdal_text(exc)}; delete its folder and "
                "fetch again"
            ) from exc
        return Chip(
            data=data,
            bands=bands,
            crs=grid.crs,
            transform=grid.transform,
            valid=mask > 0,
            scene=scene,
            cloud=mask == 2,
            nodata=nodata,
        )

    def chips(self, site_id: str) -> list[ArchivedChip]:
        """The chips of a site, oldest first."""
        chips = [self._archived(site_id, p) for p in self._item_paths(site_id)]
        return sorted(chips, key=lambda c: (c.datetime, c.item_id))

    def sites(self) -> list[str]:
        """The (folder-safe) ids of the sites with chips in the archive."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "collection.json").is_file())

    def find(self, ref: str, site_id: str | None = None) -> list[ArchivedChip]:
        """The chips whose item id or scene id is ``ref``, of one site or of every site."""
        sites = [site_id] if site_id is not None else self.sites()
        return [c for s in sites for c in self.chips(s) if ref in (c.item_id, c.scene_id)]

    def verify(self, site_id: str) -> list[str]:
        """Files of a site whose checksum no longer matches its item (empty when all is well)."""
        bad = []
        for chip in self.chips(site_id):
            if not chip.path.is_file() or sha256_file(chip.path) != chip.sha256:
                bad.append(str(chip.path))
        return bad

    def archived_resolution(self, site_id: str) -> tuple[float, int] | None:
        """The pixel size (m) of most of a site's archived chips and how many have it (the
        finer on a tie), or None without chips: a series stays on one grid."""
        counts: dict[float, int] = {}
        for chip in self.chips(site_id):
            if chip.resolution > 0:
                counts[chip.resolution] = counts.get(chip.resolution, 0) + 1
        if not counts:
            return None
        res = min(counts, key=lambda r: (-counts[r], r))
        return res, counts[res]

    def has(self, site_id: str, item_id: str) -> bool:
        """Whether a chip is stored and intact (its checksum matches)."""
        return self._stored(site_id, item_id) is not None

    # --- fetching ---------------------------------------------------------------------------

    def fetch(
        self,
        site_id: str,
        scenes: Sequence[tuple[ImagerySource, Scene]],
        grid: ChipGrid,
        bands: Sequence[str] | None = None,
        *,
        resampling: str = "bilinear",
        cloud_mask: CloudMethod = "auto",
        min_coverage: float = 0.0,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> FetchResult:
        """Cut each scene to ``grid`` and store it; scenes already stored intact are skipped."""
        stored: list[ArchivedChip] = []
        existing: list[ArchivedChip] = []
        failed: list[tuple[str, str]] = []
        empty: list[tuple[str, str]] = []
        recut: list[str] = []
        total = len(scenes)
        for n, (source, scene) in enumerate(scenes, start=1):
            item_id = self.item_id(scene, grid)
            old = self._stored(site_id, item_id) if not overwrite else None
            want = list(bands) if bands else None
            if old is not None:
                missing = [b for b in bands or () if b in scene.assets and b not in old.bands]
                # a chip's bands are its scene's asset names: names the scene no longer has mean
                # the source renamed them (a local folder given its band order in sources.toml)
                renamed = [b for b in old.bands if b not in scene.assets]
                if not missing and not renamed and self._chip_on_grid(old, grid):
                    existing.append(old)
                    if progress is not None:
                        progress(n, total)
                    continue
                if renamed:
                    log.info("scene %s: the archived chip's bands %s are named %s now; cutting it "
                             "again", scene.id, ", ".join(old.bands), ", ".join(scene.bands))  # fmt: skip
                    want = list(bands) if bands else None
                else:  # cut again on the site's present grid, keeping the bands it had
                    log.info("scene %s: the archived chip is on another grid or lacks %s; cutting "
                             "it again", scene.id, ", ".join(missing) or "no band")  # fmt: skip
                    want = [*old.bands, *missing] if bands else None
            try:
                with source.open(scene) as reader:
                    chip = self._read(reader, grid, want, resampling, cloud_mask)
                if chip.coverage <= min_coverage:
                    empty.append((scene.id, f"covers only {chip.coverage:.1%} of the chip"))
                else:
                    stored.append(
                        self.add_chip(site_id, chip, source=source.name, credit=source.credit)
                    )
                    if old is not None:
                        recut.append(item_id)
            except (ImageryError, SourceError) as exc:
                log.warning("scene %s: %s", scene.id, exc)
                failed.append((scene.id, str(exc)))
            if progress is not None:
                progress(n, total)
        return FetchResult(
            tuple(stored), tuple(existing), tuple(failed), tuple(recut), tuple(empty)
        )

    def _stored(self, site_id: str, item_id: str) -> ArchivedChip | None:
        """The stored chip of that id when it is intact (its checksum matches), else None."""
        path = self.site_dir(site_id) / item_id / f"{item_id}.json"
        if not path.is_file():
            return None
        chip = self._archived(site_id, path)
        return chip if chip.path.is_file() and sha256_file(chip.path) == chip.sha256 else None

    @staticmethod
    def _chip_on_grid(chip: ArchivedChip, grid: ChipGrid) -> bool:
        try:
            with rasterio.open(chip.path) as ds:
                return _on_grid(ds, grid)
        except RasterioError:
            return False

    @staticmethod
    def _read(
        reader: SceneReader,
        grid: ChipGrid,
        bands: Sequence[str] | None,
        resampling: str,
        cloud_mask: CloudMethod,
    ) -> Chip:
        wanted = [b for b in bands if b in reader.scene.assets] if bands else None
        if bands and not wanted:
            raise ImageryError(
                f"scene {reader.scene.id!r} has none of the bands {', '.join(bands)} "
                f"(it has {', '.join(reader.scene.bands)})"
            )
        return read_chip(reader, grid, wanted, resampling=resampling, cloud_mask=cloud_mask)


def _on_grid(ds: Any, grid: ChipGrid) -> bool:
    """Whether an open raster lies exactly on ``grid`` (CRS, transform and size)."""
    return bool(
        ds.crs is not None
        and rasterio.crs.CRS.from_user_input(grid.crs) == ds.crs
        and ds.transform.almost_equals(grid.transform)
        and (ds.width, ds.height) == (grid.width, grid.height)
    )
