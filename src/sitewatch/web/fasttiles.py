"""Fast tile rendering from decoded chips kept in memory (the path behind :mod:`.tiles`).

Archived chips are small, so instead of opening, decoding and warping a COG for every tile (what
rio-tiler does, ~13 ms of CPU a tile), a chip is decoded once: its display bands, stretched to
uint8 exactly as rio-tiler's ``rescale`` does, interleaved with an alpha byte, for the full
resolution and each overview. A tile is then:

* the Web Mercator → chip pixel mapping, computed exactly for a 17x17 grid of the tile's pixel
  centres (pyproj) and interpolated bilinearly to 256x256 (what GDAL's approximate transformer
  does; the error stays far below 1/8 pixel on a 256 px tile),
* a nearest-neighbour gather (``numpy.take``) from the overview GDAL would read (the coarsest
  that the tile oversamples by at most 1.2x), transparent outside the chip and on nodata,
* a PNG encoded with zlib directly (rows "Up"-filtered; RGB when the tile is fully opaque).

The decoded chips live in a least-recently-used cache bounded in bytes
(``SITEWATCH_WEB_TILE_CHIP_CACHE_MB``); a chip that would take more than a quarter of it, or that
has an internal mask or alpha band, is left to rio-tiler.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.enums import MaskFlags

__all__ = ["ChipCache", "DecodedChip", "decode_chip", "encode_png", "render_tile"]

_GRID = 17  # points a side of the exactly transformed grid
_TILE = 256
_WORLD = 20037508.342789244  # half the Web Mercator extent, metres
_FLOAT_KINDS = "f"
_OVERSAMPLING = 1.2  # GDAL_OVERVIEW_OVERSAMPLING_THRESHOLD's default


def _interp_index() -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """For each of the 256 pixel centres of a tile side: the grid node before it and its weight."""
    pos = np.arange(_TILE) * (_GRID - 1) / (_TILE - 1)  # grid node k sits on pixel k*255/16
    k = np.minimum(np.floor(pos).astype(np.intp), _GRID - 2)
    return k, pos - k


_K, _F = _interp_index()
_F_COL = _F[:, None]
_F32 = _F.astype(np.float32)
_NODES = np.arange(_GRID) * (_TILE - 1) / (_GRID - 1) + 0.5  # node positions, pixel units


def _upsample(grid: NDArray[np.float64]) -> NDArray[np.float32]:
    """Bilinear interpolation of a 17x17 node grid to 256x256 (float32, elementwise: a matrix
    product would wake BLAS threads, slow on a busy machine)."""
    rows = (grid[_K] + (grid[_K + 1] - grid[_K]) * _F_COL).astype(np.float32)  # (256, 17)
    out: NDArray[np.float32] = rows[:, _K]
    out += (rows[:, _K + 1] - out) * _F32
    return out


def _floor(values: NDArray[np.float32]) -> NDArray[np.intp]:
    """floor() as integers, exact from -1 up; lower values (and NaN) stay negative."""
    np.clip(values, -1.0, 2.0**24, out=values)
    values += 1.0
    with np.errstate(invalid="ignore"):
        out: NDArray[np.intp] = values.astype(np.intp)
    out -= 1
    return out


@dataclass(frozen=True)
class _Level:
    """One resolution of a decoded chip: stretched bands and alpha, pixel-interleaved."""

    pixels: NDArray[np.generic]  # (h, w) of uint32 (RGBA) or uint16 (grey + alpha)
    height: int
    width: int
    factor: float  # its pixel size over the full-resolution pixel size


@dataclass(frozen=True)
class DecodedChip:
    """A chip ready to draw: its levels (full resolution first), CRS and pixel grid."""

    levels: tuple[_Level, ...]
    crs_wkt: str
    inverse: Affine  # chip CRS → full-resolution (col, row)
    bands: int  # 1 (grey) or 3 (RGB)
    nbytes: int


def _stretch(data: NDArray[np.generic], lo: float, hi: float) -> NDArray[np.uint8]:
    """rio-tiler's ``rescale`` (``linear_rescale`` written back into the source dtype, then uint8)."""
    scaled = (np.clip(data, lo, hi, dtype=np.float64) - lo) / np.float64(hi - lo) * 255.0
    if data.dtype.kind in _FLOAT_KINDS:
        scaled = scaled.astype(data.dtype)
    out: NDArray[np.uint8] = np.floor(scaled).astype(np.uint8)
    return out


def decode_chip(
    path: Path,
    indexes: Sequence[int],
    in_range: Sequence[tuple[float, float]],
    *,
    max_bytes: int,
) -> DecodedChip | None:
    """Decode the display bands of a chip at every resolution; None when rio-tiler must draw it.

    That is when the chip has an internal mask or alpha band (rio-tiler's masking rules apply), a
    signed 8-bit type (rio-tiler's rescale wraps it), or would need more than ``max_bytes``.
    """
    with rasterio.open(path) as ds:
        flags = [ds.mask_flag_enums[i - 1] for i in indexes]
        if any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags):
            return None
        if ds.dtypes[0] == "int8" or len(indexes) not in (1, 3):
            return None
        factors = [1, *ds.overviews(indexes[0])]
        per_px = len(indexes) + 1
        total = sum(
            -(-ds.width // f) * -(-ds.height // f) * (4 if per_px == 4 else 2) for f in factors
        )
        if total > max_bytes:
            return None
        nodata = ds.nodata
        crs_wkt = ds.crs.to_wkt()
        inverse = ~ds.transform
        width, height = ds.width, ds.height
    levels = []
    for level, _f in enumerate(factors):
        opts = {} if level == 0 else {"overview_level": level - 1}
        with rasterio.open(path, **opts) as src:
            data = src.read(list(indexes))
        h, w = data.shape[1:]
        if nodata is None:
            valid = np.ones((h, w), bool)
        elif np.isnan(nodata):
            valid = np.logical_or.reduce(~np.isnan(data), axis=0)
        else:
            valid = np.logical_or.reduce(data != nodata, axis=0)
        out = np.zeros((h, w, 4 if per_px == 4 else 2), np.uint8)
        for b, (lo, hi) in enumerate(in_range[: len(indexes)]):
            out[..., b] = np.where(valid, _stretch(data[b], lo, hi), 0)
        out[..., -1] = np.where(valid, 255, 0)
        view = out.view(np.uint32 if per_px == 4 else np.uint16)[..., 0]
        levels.append(_Level(view, h, w, max(width / w, height / h)))
    return DecodedChip(
        tuple(levels), crs_wkt, inverse, len(indexes), sum(lv.pixels.nbytes for lv in levels)
    )


class ChipCache:
    """Decoded chips by key, least recently used first out, at most ``max_bytes`` in all."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chips: OrderedDict[tuple[str, str], DecodedChip | None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._decoding: dict[tuple[str, str], threading.Lock] = {}

    @property
    def nbytes(self) -> int:
        """Bytes held by the decoded chips now."""
        return self._bytes

    def get(
        self,
        key: tuple[str, str],
        path: Path,
        indexes: Sequence[int],
        in_range: Sequence[tuple[float, float]],
    ) -> DecodedChip | None:
        """The decoded chip (decoded now if needed, once even when threads ask together)."""
        with self._lock:
            if key in self._chips:
                self._chips.move_to_end(key)
                return self._chips[key]
            gate = self._decoding.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._chips:
                    self._chips.move_to_end(key)
                    return self._chips[key]
            # a chip over a quarter of the budget is left to rio-tiler (it would evict the rest)
            chip = decode_chip(path, indexes, in_range, max_bytes=self.max_bytes // 4)
            with self._lock:
                self._chips[key] = chip
                self._bytes += chip.nbytes if chip is not None else 0
                while self._bytes > self.max_bytes and len(self._chips) > 1:
                    old = self._chips.popitem(last=False)[1]
                    self._bytes -= old.nbytes if old is not None else 0
                while len(self._chips) > 4096:  # the None entries (rio-tiler's chips) cost little
                    old = self._chips.popitem(last=False)[1]
                    self._bytes -= old.nbytes if old is not None else 0
                self._decoding.pop(key, None)
        return chip


_local = threading.local()


def _transformer(crs_wkt: str) -> Transformer:
    """Web Mercator → ``crs_wkt``, one per thread (a Transformer is not meant to be shared)."""
    cache: dict[str, Transformer] | None = getattr(_local, "t", None)
    if cache is None:
        cache = _local.t = {}
    t = cache.get(crs_wkt)
    if t is None:
        if len(cache) > 16:
            cache.clear()
        t = cache[crs_wkt] = Transformer.from_crs("EPSG:3857", crs_wkt, always_xy=True)
    return t


def tile_pixel_coords(
    chip: DecodedChip, z: int, x: int, y: int, *, exact: bool = False
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Full-resolution (col, row) of the 256x256 pixel centres of tile ``z/x/y`` in the chip.

    Exact for every pixel with ``exact=True``, else from the 17x17 grid (the one used to draw).
    """
    size = 2 * _WORLD / 2**z
    res = size / _TILE
    west, north = -_WORLD + x * size, _WORLD - y * size
    pos = (np.arange(_TILE) + 0.5) if exact else _NODES
    xs, ys = np.meshgrid(west + pos * res, north - pos * res)
    ex, ey = _transformer(chip.crs_wkt).transform(xs, ys)
    a, b, c, d, e, f = chip.inverse[:6]
    col = a * ex + b * ey + c
    row = d * ex + e * ey + f
    if exact:
        return col, row
    return _upsample(col), _upsample(row)


def render_tile(
    chip: DecodedChip, z: int, x: int, y: int
) -> tuple[NDArray[np.generic] | None, float]:
    """Tile ``z/x/y`` as (256, 256) pixels of the chip's level type (None when it misses the chip)
    and the chip's full-resolution pixels per tile pixel (below 1 where the tile upsamples)."""
    col, row = tile_pixel_coords(chip, z, x, y)
    # decimation: full-resolution pixels per tile pixel, along the tile's rows and columns
    mid = _TILE // 2
    step = max(
        float(np.hypot(col[mid, mid + 1] - col[mid, mid], row[mid, mid + 1] - row[mid, mid])),
        float(np.hypot(col[mid + 1, mid] - col[mid, mid], row[mid + 1, mid] - row[mid, mid])),
    )
    level = chip.levels[0]
    for candidate in chip.levels[1:]:  # GDAL's choice: oversampling an overview by up to 1.2x
        if candidate.factor <= step * _OVERSAMPLING:
            level = candidate
    if level is not chip.levels[0]:
        col = col * (level.width / chip.levels[0].width)
        row = row * (level.height / chip.levels[0].height)
    ci, ri = _floor(col), _floor(row)
    w, h = level.width, level.height
    c0, c1, r0, r1 = int(ci.min()), int(ci.max()), int(ri.min()), int(ri.max())
    if c1 < 0 or r1 < 0 or c0 >= w or r0 >= h:
        return None, step
    flat = ri * w + ci
    pixels = level.pixels.reshape(-1)
    if c0 >= 0 and r0 >= 0 and c1 < w and r1 < h:
        return pixels.take(flat), step
    inside = (ci >= 0) & (ci < w) & (ri >= 0) & (ri < h)
    if not inside.any():
        return None, step
    out = pixels.take(np.where(inside, flat, 0))
    out[~inside] = 0
    return out, step


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_png(
    tile: NDArray[np.generic], bands: int, zlevel: int = 1, *, repeats: bool = False
) -> bytes:
    """A PNG of rendered tile pixels (RGBA or grey + alpha; alpha dropped when fully opaque).

    Rows are "Up"-filtered (a row repeated by upsampling costs nothing). At ``zlevel`` 1 zlib runs
    its run-length strategy, 2-3x faster than its default on imagery for similar sizes, unless
    ``repeats`` says that pixels repeat along rows (a tile upsampling its chip 3x or more), where
    the default strategy is as fast and finds the repeats (tiles half the size).
    """
    px = tile.reshape(_TILE, _TILE).view(np.uint8).reshape(_TILE, _TILE, bands + 1)
    alpha = px[..., bands]
    if alpha.min() == 255:
        px, colour = px[..., :bands], (2 if bands == 3 else 0)
    else:
        colour = 6 if bands == 3 else 4
    rows = np.ascontiguousarray(px).reshape(_TILE, -1)
    filtered = np.empty((_TILE, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # Up
    filtered[0, 0] = 0
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    strategy = zlib.Z_RLE if zlevel <= 1 and not repeats else zlib.Z_DEFAULT_STRATEGY
    comp = zlib.compressobj(zlevel, zlib.DEFLATED, 15, 9, strategy)
    idat = comp.compress(filtered.tobytes()) + comp.flush()
    header = struct.pack(">IIBBBBB", _TILE, _TILE, 8, colour, 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
