"""Tiling an AOI raster (or a mosaic VRT of several files) into overlapping chips, lazily.

A :class:`TileGrid` is pure arithmetic on the raster's size and transform: tile ``(row, col)``
covers pixels ``[row * stride, row * stride + tile)`` down and ``[col * stride, ...)`` across,
so consecutive tiles overlap by ``tile - stride`` pixels. The stride divides the tile: a tile is
``k x k`` *cells* of ``stride`` pixels, which lets :mod:`sitewatch.search.features` compute
per-cell sums once per block and pool them into every overlapping tile.

Nothing here holds more than one block of pixels: :func:`iter_tiles` reads the validity mask one
block at a time and yields the windows of tiles that hold at least one valid pixel, so memory
depends on the block size, never on the AOI.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.errors import NodataShadowWarning
from rasterio.io import DatasetReader
from rasterio.windows import Window

from ..errors import ImageryError, InputError, gdal_text
from ..files import write_text
from ..geo import pixel_area_m2

__all__ = [
    "TILE_M",
    "Block",
    "Tile",
    "TileGrid",
    "build_vrt",
    "default_tile",
    "iter_blocks",
    "iter_tiles",
    "shadow_quiet",
    "valid_mask",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tile:
    """One chip: its grid index, pixel window and affine transform."""

    row: int
    col: int
    window: Window
    transform: Affine


@dataclass(frozen=True)
class Block:
    """A rectangle of tiles processed together: tiles ``[row0, row0 + n_rows)`` x ``[col0, ...)``."""

    row0: int
    col0: int
    n_rows: int
    n_cols: int


@dataclass(frozen=True)
class TileGrid:
    """Overlapping square tiles over a ``width`` x ``height`` raster.

    ``tile`` and ``stride`` are in pixels and ``stride`` divides ``tile``. Tiles on the last row
    and column may run past the raster edge; those pixels read as nodata.
    """

    width: int
    height: int
    transform: Affine
    crs: CRS | None
    tile: int
    stride: int

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.stride <= 0 or self.tile % self.stride:
            raise InputError(
                f"tile size {self.tile} px must be a positive multiple of the stride "
                f"{self.stride} px (e.g. tile 32, stride 16 for 50% overlap)"
            )
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"cannot tile an empty raster ({self.width} x {self.height} px)")

    @classmethod
    def of(cls, dataset: DatasetReader, tile: int, stride: int) -> TileGrid:
        """The grid of ``dataset``."""
        return cls(dataset.width, dataset.height, dataset.transform, dataset.crs, tile, stride)

    @property
    def cells_per_tile(self) -> int:
        """How many stride cells a tile spans along each axis."""
        return self.tile // self.stride

    @property
    def n_rows(self) -> int:
        """Tile rows: enough to cover every pixel row."""
        return max(1, math.ceil((self.height - self.tile) / self.stride) + 1)

    @property
    def n_cols(self) -> int:
        """Tile columns."""
        return max(1, math.ceil((self.width - self.tile) / self.stride) + 1)

    @property
    def shape(self) -> tuple[int, int]:
        """(tile rows, tile columns)."""
        return (self.n_rows, self.n_cols)

    def window(self, row: int, col: int) -> Window:
        """The pixel window of tile ``(row, col)`` (may run past the raster edge)."""
        return Window(col * self.stride, row * self.stride, self.tile, self.tile)

    def tile_transform(self, row: int, col: int) -> Affine:
        """The affine transform of tile ``(row, col)``."""
        return self.transform * Affine.translation(col * self.stride, row * self.stride)

    def tile_at(self, row: int, col: int) -> Tile:
        """The :class:`Tile` at ``(row, col)``."""
        return Tile(row, col, self.window(row, col), self.tile_transform(row, col))

    def corners(self, row: int, col: int) -> list[tuple[float, float]]:
        """The closed ring of the tile's corners in the raster CRS."""
        n = self.tile
        pts = [(0, 0), (n, 0), (n, n), (0, n), (0, 0)]
        return [self._point(row, col, dx, dy) for dx, dy in pts]

    def centre(self, row: int, col: int) -> tuple[float, float]:
        """The tile centre in the raster CRS."""
        return self._point(row, col, self.tile / 2.0, self.tile / 2.0)

    def _point(self, row: int, col: int, dx: float, dy: float) -> tuple[float, float]:
        x, y = self.points(np.array([row]), np.array([col]), dx, dy)
        return float(x[0]), float(y[0])

    def points(
        self, rows: NDArray[np.integer], cols: NDArray[np.integer], dx: float, dy: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The point ``(dx, dy)`` pixels from the top-left corner of each tile ``(rows[i],
        cols[i])``, in the raster CRS: :meth:`centre` and :meth:`corners` for many tiles at once
        (the same affine arithmetic as :meth:`tile_transform`, in arrays)."""
        t = self.transform
        tx = np.asarray(cols, dtype=np.float64) * self.stride
        ty = np.asarray(rows, dtype=np.float64) * self.stride
        c = t.a * tx + t.b * ty + t.c
        f = t.d * tx + t.e * ty + t.f
        return t.a * dx + t.b * dy + c, t.d * dx + t.e * dy + f

    def tiles_containing(self, x: float, y: float) -> list[tuple[int, int]]:
        """Grid indices of every tile whose footprint contains the point (raster CRS)."""
        col_f, row_f = ~self.transform * (x, y)
        out = []
        k = self.cells_per_tile
        r_hi, c_hi = math.floor(row_f / self.stride), math.floor(col_f / self.stride)
        for r in range(r_hi - k + 1, r_hi + 1):
            for c in range(c_hi - k + 1, c_hi + 1):
                if 0 <= r < self.n_rows and 0 <= c < self.n_cols:
                    out.append((r, c))
        return out

    def blocks(self, block_tiles: int) -> list[Block]:
        """Split the grid into blocks of at most ``block_tiles`` x ``block_tiles`` tiles."""
        if block_tiles <= 0:
            raise InputError(f"block size must be positive, got {block_tiles}")
        out = []
        for r0 in range(0, self.n_rows, block_tiles):
            for c0 in range(0, self.n_cols, block_tiles):
                out.append(
                    Block(
                        r0,
                        c0,
                        min(block_tiles, self.n_rows - r0),
                        min(block_tiles, self.n_cols - c0),
                    )
                )
        return out

    def block_window(self, block: Block, halo: int = 0) -> Window:
        """The pixel window a block's tiles cover, grown by ``halo`` pixels on every side."""
        col0 = block.col0 * self.stride - halo
        row0 = block.row0 * self.stride - halo
        w = (block.n_cols - 1) * self.stride + self.tile + 2 * halo
        h = (block.n_rows - 1) * self.stride + self.tile + 2 * halo
        return Window(col0, row0, w, h)

    def pixel_area_m2(self, row: float | None = None) -> float:
        """Ground area of one pixel in m2 at pixel row ``row`` (default: the middle row), as
        :func:`sitewatch.geo.pixel_area_m2` gives it."""
        r = self.height / 2.0 if row is None else row
        return pixel_area_m2(self.crs, self.transform, self.width / 2.0, r)


TILE_M = 40.0
"""Default tile side on the ground: about one site feature (an apron, a shelter) across, the
size that found the held-out sites of ``search eval`` best (see :mod:`.evaluate`)."""


def default_tile(dataset: DatasetReader, metres: float = TILE_M) -> int:
    """Tile side in pixels nearest ``metres`` on the ground, even (so a half-tile stride is
    whole) and at least 4 pixels: 4 at 10 m, 8 at 5 m, 80 at 0.5 m."""
    side_m = math.sqrt(TileGrid.of(dataset, 2, 1).pixel_area_m2())
    return max(4, 2 * round(metres / side_m / 2.0))


def iter_blocks(grid: TileGrid, block_tiles: int) -> Iterator[Block]:
    """Blocks of the grid, lazily."""
    yield from grid.blocks(block_tiles)


_T = TypeVar("_T")
_QUIET = threading.Lock()


def shadow_quiet(dataset: DatasetReader, read: Callable[[], _T]) -> _T:
    """``read()`` (a mask or masked read of ``dataset``) without rasterio's NodataShadowWarning,
    which a dataset whose nodata value shadows an alpha band (4 uint8 bands written as RGBA)
    raises on every mask read: its masks come from the nodata value, as wanted.
    ``warnings.catch_warnings`` changes process-wide state and is not thread-safe (one block
    task leaving it restores the filters under another), so only such datasets take it, one
    thread at a time; others read without it."""
    if dataset.nodata is None or ColorInterp.alpha not in dataset.colorinterp:
        return read()
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)
        return read()


def valid_mask(dataset: DatasetReader, window: Window) -> NDArray[np.bool_]:
    """Pixels of ``window`` that hold data (boundless: outside the raster is invalid)."""
    h, w = int(window.height), int(window.width)
    out = np.zeros((h, w), dtype=bool)
    inner = (
        window.intersection(Window(0, 0, dataset.width, dataset.height))
        if _overlaps(window, dataset)
        else None
    )
    if inner is None:
        return out
    mask = shadow_quiet(dataset, lambda: dataset.dataset_mask(window=inner)) > 0
    r0 = int(inner.row_off - window.row_off)
    c0 = int(inner.col_off - window.col_off)
    out[r0 : r0 + mask.shape[0], c0 : c0 + mask.shape[1]] = mask
    return out


def _overlaps(window: Window, dataset: DatasetReader) -> bool:
    return bool(
        window.col_off < dataset.width
        and window.row_off < dataset.height
        and window.col_off + window.width > 0
        and window.row_off + window.height > 0
    )


def iter_tiles(dataset: DatasetReader, grid: TileGrid, block_tiles: int = 64) -> Iterator[Tile]:
    """Every tile holding at least one valid pixel, block by block (memory: one block mask)."""
    k = grid.cells_per_tile
    s = grid.stride
    for block in grid.blocks(block_tiles):
        mask = valid_mask(dataset, grid.block_window(block))
        ny, nx = block.n_rows - 1 + k, block.n_cols - 1 + k
        cells = mask[: ny * s, : nx * s].reshape(ny, s, nx, s).any(axis=(1, 3))
        # a tile is valid when any of its k x k cells is
        win = np.lib.stride_tricks.sliding_window_view(cells, (k, k)).any(axis=(2, 3))
        for r, c in zip(*np.nonzero(win), strict=True):
            yield grid.tile_at(block.row0 + int(r), block.col0 + int(c))


def build_vrt(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Write a mosaic VRT of ``paths`` (same CRS and pixel size, north-up) to ``out``.

    Later files are drawn over earlier ones where they overlap. The VRT is read like any raster.
    """
    if not paths:
        raise InputError("no image files given for the mosaic")
    infos = []
    for p in paths:
        try:
            with rasterio.open(p) as ds:
                infos.append((Path(p).resolve(), ds.crs, ds.transform, ds.width, ds.height,
                              ds.count, ds.dtypes[0], ds.nodata))  # fmt: skip
        except rasterio.errors.RasterioIOError as exc:
            raise ImageryError(f"cannot open {p}: {gdal_text(exc)}; check the path") from exc
    seen: set[Path] = set()
    for info in infos:
        if info[0] in seen:  # a shell glob and a name typed again: area counted twice
            raise InputError(f"{info[0]} is given twice for the mosaic; give each file once")
        seen.add(info[0])
    _, crs0, t0, _, _, count0, dtype0, nodata0 = infos[0]
    for path, crs, t, _, _, count, dtype, _ in infos[1:]:
        if crs != crs0 or not np.allclose((t.a, t.e), (t0.a, t0.e)) or t.b or t.d:
            raise ImageryError(
                f"{path} has CRS {crs} and pixel size ({t.a}, {t.e}) but {infos[0][0]} has "
                f"{crs0} and ({t0.a}, {t0.e}); reproject the files to one grid first (gdalwarp)"
            )
        if count != count0 or dtype != dtype0:
            raise ImageryError(
                f"{path} has {count} bands of {dtype} but {infos[0][0]} has {count0} of {dtype0}"
            )
    xs0 = [t.c for _, _, t, *_ in infos]
    ys0 = [t.f for _, _, t, *_ in infos]
    xs1 = [t.c + w * t.a for _, _, t, w, *_ in infos]
    ys1 = [t.f + h * t.e for _, _, t, _, h, *_ in infos]
    west, north = min(xs0), max(ys0)
    east, south = max(xs1), min(ys1)
    px, py = t0.a, -t0.e
    width = round((east - west) / px)
    height = round((north - south) / py)
    gdal_type = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
                 "int32": "Int32", "float32": "Float32", "float64": "Float64"}[dtype0]  # fmt: skip
    nodata_xml = f"<NoDataValue>{nodata0}</NoDataValue>" if nodata0 is not None else ""
    bands = []
    for b in range(1, count0 + 1):
        srcs = []
        for path, _, t, w, h, *_ in infos:
            xoff = round((t.c - west) / px)
            yoff = round((north - t.f) / py)
            src_nodata = f"<NODATA>{nodata0}</NODATA>" if nodata0 is not None else ""
            srcs.append(
                f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(str(path))}'
                f"</SourceFilename><SourceBand>{b}</SourceBand>"
                f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                f'<DstRect xOff="{xoff}" yOff="{yoff}" xSize="{w}" ySize="{h}"/>'
                f"{src_nodata}</ComplexSource>"
            )
        bands.append(
            f'<VRTRasterBand dataType="{gdal_type}" band="{b}">{nodata_xml}{"".join(srcs)}'
            "</VRTRasterBand>"
        )
    wkt = escape(crs0.to_wkt()) if crs0 is not None else ""
    doc = (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{wkt}</SRS>'
        f"<GeoTransform>{west}, {px}, 0, {north}, 0, {-py}</GeoTransform>{''.join(bands)}"
        "</VRTDataset>"
    )
    out = Path(out)
    write_text(out, doc)
    logger.info("mosaic of %d files written to %s (%d x %d px)", len(infos), out, width, height)
    return out
