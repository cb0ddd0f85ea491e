"""Map tiles of archived chips (Cloud-Optimized GeoTIFFs) with rio-tiler.

A chip is named by its site and its archive item (or scene) id and resolved through
:class:`~sitewatch.imagery.archive.Archive`: no path ever comes from the request, so no request can
reach a file outside the archive. Tiles are Web Mercator XYZ PNGs; the colours are stretched
between the 2nd and 98th percentiles of each band (computed once per chip from an overview), and
rendered tiles are kept in an LRU cache keyed by the chip's content (its SHA-256 in the archive)
and ``z/x/y``, so a chip archived anew under the same id is never answered from a stale entry.
Each tile has an ETag made of the same key, so browsers can revalidate it for free.

A tile is drawn from the chip decoded once into memory (:mod:`.fasttiles`: a pixel mapping from a
coarse exactly-transformed grid, a nearest-neighbour gather and a zlib PNG, ~1-2 ms) and by rio-tiler
only for chips the decoded-chip cache cannot hold (over a quarter of it) or that carry an internal
mask or alpha band.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

from ..errors import ArchiveError, ImageryError, InputError, NotFound
from ..imagery._bands import display_composite
from ..imagery.archive import Archive, ArchivedChip
from .fasttiles import ChipCache, encode_png, render_tile

__all__ = ["ChipStyle", "Tile", "TileRenderer", "empty_tile"]

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
_LIST_TTL_S = 5.0
_RENDER_VERSION = "2"  # part of every ETag: bump when the drawing changes
_OPEN_PER_THREAD = 8  # chips each rendering thread keeps open
_EMPTY: bytes | None = None


def empty_tile() -> bytes:
    """A fully transparent 256x256 PNG (for tiles outside a chip)."""
    global _EMPTY
    if _EMPTY is None:
        from rio_tiler.models import ImageData

        img = ImageData(np.ma.MaskedArray(np.zeros((1, 256, 256), "uint8"), mask=True))
        _EMPTY = img.render(img_format="PNG")
    return _EMPTY


@dataclass(frozen=True)
class ChipStyle:
    """How a chip is drawn: which bands (1-based) and their stretch."""

    indexes: tuple[int, ...]
    in_range: tuple[tuple[float, float], ...]


def _rgb_indexes(bands: tuple[str, ...], count: int) -> tuple[int, ...]:
    """The 1-based bands drawn, as the report figures show them (true colour, else false
    colour, else the first three or one): a Landsat chip without blue showed its green band grey."""
    return tuple(i + 1 for i in display_composite(bands, count)[0])


@dataclass(frozen=True)
class Tile:
    """A rendered PNG tile and its ETag."""

    png: bytes
    etag: str


def _key(chip: ArchivedChip, z: int, x: int, y: int) -> tuple[str, str, int, int, int]:
    return (str(chip.path), chip.sha256, z, x, y)


def _etag(chip: ArchivedChip, z: int, x: int, y: int, zlevel: int) -> str:
    return f'"{_RENDER_VERSION}.{zlevel}-{chip.sha256[:20]}-{z}-{x}-{y}"'


class TileRenderer:
    """Renders XYZ tiles of the chips in an archive folder."""

    def __init__(
        self,
        archive_root: Path,
        *,
        cache_size: int = 512,
        zlevel: int = 1,
        chip_cache_mb: float = 256.0,
    ) -> None:
        self.archive = Archive(archive_root)
        # decoded chips (0: draw every tile with rio-tiler)
        self.decoded = ChipCache(int(chip_cache_mb * 2**20))
        self._cache_size = cache_size
        self._zlevel = zlevel
        self._tiles: OrderedDict[tuple[str, str, int, int, int], bytes] = OrderedDict()
        self._styles: dict[tuple[Path, str], ChipStyle] = {}
        self._lists: dict[str, tuple[float, list[ArchivedChip]]] = {}
        self._lock = threading.Lock()
        # open datasets are not thread-safe: each thread keeps its own few, by path and content
        self._local = threading.local()
        self._open: dict[int, DatasetReader] = {}  # every open dataset, by id() of its reader

    def _reader(self, chip: ArchivedChip) -> Reader:
        """An open reader of ``chip`` for this thread (opening a COG costs as much as a read)."""
        readers: OrderedDict[tuple[Path, str], Reader] | None = getattr(self._local, "r", None)
        if readers is None:
            readers = self._local.r = OrderedDict()
        key = (chip.path, chip.sha256)
        src = readers.get(key)
        if src is not None:
            readers.move_to_end(key)
            return src
        # a dataset opened outside a ``with`` block: closing it later needs no GDAL environment of
        # this thread (the server closes every reader from its main thread when it stops)
        dataset = rasterio.open(chip.path)
        src = Reader(str(chip.path), dataset=dataset)
        readers[key] = src
        with self._lock:
            self._open[id(src)] = dataset
        while len(readers) > _OPEN_PER_THREAD:
            self._close(readers.popitem(last=False)[1])
        return src

    def _close(self, src: Reader) -> None:
        with self._lock:
            dataset = self._open.pop(id(src), None)
        if dataset is not None:
            dataset.close()

    def _forget_reader(self, chip: ArchivedChip) -> None:
        readers: OrderedDict[tuple[Path, str], Reader] | None = getattr(self._local, "r", None)
        src = readers.pop((chip.path, chip.sha256), None) if readers is not None else None
        if src is not None:
            self._close(src)

    def close(self) -> None:
        """Close every open chip (when the server stops)."""
        with self._lock:
            datasets, self._open = list(self._open.values()), {}
        for dataset in datasets:
            dataset.close()

    def lookup(self, site_id: str, item: str, z: int, x: int, y: int) -> Tile | None:
        """A cached tile, answered from memory only (no file access); None when not at hand."""
        with self._lock:
            listed = self._lists.get(site_id)
            if listed is None or time.monotonic() - listed[0] >= _LIST_TTL_S:
                return None
            chip = next((c for c in listed[1] if item in (c.item_id, c.scene_id)), None)
            if chip is None:
                return None
            key = _key(chip, z, x, y)
            png = self._tiles.get(key)
            if png is None:
                return None
            self._tiles.move_to_end(key)
        return Tile(png, _etag(chip, z, x, y, self._zlevel))

    def chips(self, site_id: str) -> list[ArchivedChip]:
        """The archived chips of a site, oldest first (cached for a few seconds)."""
        if not _ID_RE.match(site_id):
            raise NotFound(f"no imagery for site {site_id!r}")
        now = time.monotonic()
        with self._lock:
            hit = self._lists.get(site_id)
        if hit is not None and now - hit[0] < _LIST_TTL_S:
            return hit[1]
        chips = self.archive.chips(site_id) if self.archive.site_dir(site_id).is_dir() else []
        with self._lock:
            self._lists[site_id] = (now, chips)
        return chips

    def resolve(self, site_id: str, item: str) -> ArchivedChip:
        """The chip of ``site_id`` whose item id or scene id is ``item``."""
        if not _ID_RE.match(item):
            raise NotFound(f"no chip {item!r} for site {site_id!r}")
        for chip in self.chips(site_id):
            if item in (chip.item_id, chip.scene_id):
                return chip
        raise NotFound(
            f"no chip {item!r} for site {site_id!r}; GET /api/sites/{site_id}/imagery lists them"
        )

    def style(self, chip: ArchivedChip) -> ChipStyle:
        """The bands and stretch used to draw ``chip``."""
        with self._lock:
            cached = self._styles.get((chip.path, chip.sha256))
        if cached is not None:
            return cached
        try:
            with Reader(str(chip.path)) as src:
                indexes = _rgb_indexes(chip.bands, src.dataset.count)
                img = src.preview(indexes=indexes, max_size=512)
        except RasterioError as exc:
            raise ArchiveError(f"cannot read the chip {chip.item_id!r}: {exc}") from exc
        ranges = []
        for band in img.array:
            values = band.compressed() if np.ma.isMaskedArray(band) else np.ravel(band)
            if values.size == 0:
                ranges.append((0.0, 1.0))
                continue
            lo, hi = np.percentile(values, [2, 98])
            ranges.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
        style = ChipStyle(indexes, tuple(ranges))
        with self._lock:
            self._styles[(chip.path, chip.sha256)] = style
        return style

    def bounds(self, chip: ArchivedChip) -> tuple[float, float, float, float]:
        """The chip's (west, south, east, north) in degrees."""
        try:
            with Reader(str(chip.path)) as src:
                w, s, e, n = src.get_geographic_bounds(src.tms.rasterio_geographic_crs)
        except RasterioError as exc:
            raise ArchiveError(f"cannot read the chip {chip.item_id!r}: {exc}") from exc
        return (float(w), float(s), float(e), float(n))

    def tile(self, site_id: str, item: str, z: int, x: int, y: int) -> bytes:
        """The PNG of tile ``z/x/y`` of a chip (transparent outside it)."""
        return self.render(site_id, item, z, x, y).png

    def render(self, site_id: str, item: str, z: int, x: int, y: int) -> Tile:
        """Tile ``z/x/y`` of a chip (transparent outside it), from the cache or rendered now."""
        if not (0 <= z <= 24 and 0 <= x < 2**z and 0 <= y < 2**z):
            raise InputError(f"no tile {z}/{x}/{y}: x and y must be in 0..{2**z - 1} at zoom {z}")
        chip = self.resolve(site_id, item)
        key, etag = _key(chip, z, x, y), _etag(chip, z, x, y, self._zlevel)
        with self._lock:
            hit = self._tiles.get(key)
            if hit is not None:
                self._tiles.move_to_end(key)
                return Tile(hit, etag)
        style = self.style(chip)
        png = self._draw(chip, style, z, x, y)
        if self._cache_size > 0:
            with self._lock:
                self._tiles[key] = png
                while len(self._tiles) > self._cache_size:
                    self._tiles.popitem(last=False)
        return Tile(png, etag)

    def _draw(self, chip: ArchivedChip, style: ChipStyle, z: int, x: int, y: int) -> bytes:
        """The PNG of a tile: from the decoded chip when it is held, else with rio-tiler."""
        if self.decoded.max_bytes > 0:
            try:
                decoded = self.decoded.get(
                    (str(chip.path), chip.sha256), chip.path, style.indexes, style.in_range
                )
            except RasterioError as exc:
                raise ArchiveError(f"cannot read the chip {chip.item_id!r}: {exc}") from exc
            if decoded is not None:
                pixels, step = render_tile(decoded, z, x, y)
                if pixels is None:
                    return empty_tile()
                return encode_png(pixels, decoded.bands, self._zlevel, repeats=step < 1 / 3)
        return self.draw_with_rio_tiler(chip, style, z, x, y)

    def draw_with_rio_tiler(
        self, chip: ArchivedChip, style: ChipStyle, z: int, x: int, y: int
    ) -> bytes:
        """The PNG of a tile read, warped and encoded by rio-tiler (and GDAL)."""
        try:
            img = self._reader(chip).tile(x, y, z, indexes=style.indexes)
            png: bytes = img.rescale(in_range=style.in_range).render(
                img_format="PNG", ZLEVEL=self._zlevel
            )
        except TileOutsideBounds:
            png = empty_tile()
        except RasterioError as exc:
            self._forget_reader(chip)
            raise ImageryError(f"cannot read tile {z}/{x}/{y} of {chip.item_id!r}: {exc}") from exc
        return png
