"""Site chips: every scene cut to one site-local UTM grid, with nodata and cloud masks.

A :class:`ChipGrid` is a north-up grid in the site's UTM zone (:func:`sitewatch.geo.local_utm_crs`)
whose origin is snapped to a multiple of the resolution, so chips of the same site at the same
resolution line up pixel for pixel whatever the source. :func:`read_chip` reads the bands of one
scene through a rasterio ``WarpedVRT`` onto the grid (GDAL reads only the source blocks it needs, and
an overview level is chosen when the grid is coarser than the image).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from shapely.geometry.base import BaseGeometry

from ..errors import ImageryError, InputError, gdal_text
from ..geo import local_utm_crs, to_crs
from ..types import BBox
from .scene import DN_OFFSETS, Scene, bbox_intersects, reflectance_of

if TYPE_CHECKING:
    from .sources.base import ImagerySource, SceneReader

__all__ = [
    "Chip",
    "ChipGrid",
    "CloudMethod",
    "cloud_score",
    "cut_chip",
    "read_chip",
]

log = logging.getLogger(__name__)

CloudMethod = Literal["auto", "scl", "qa_pixel", "score", "none"]

SCL_CLOUD = (3, 8, 9, 10)
"""Sentinel-2 scene classes counted as cloud: cloud shadow, medium and high cloud, thin cirrus."""
SCL_NODATA = (0,)
QA_FILL_BIT = 0
QA_CLOUD_BITS = (1, 2, 3, 4)
"""Landsat collection-2 QA_PIXEL bits counted as cloud: dilated cloud, cirrus, cloud, cloud shadow."""


@dataclass(frozen=True)
class ChipGrid:
    """A north-up pixel grid: CRS, affine transform (top-left origin) and size."""

    crs: str
    transform: Affine
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"a chip grid needs a positive size, got {self.width}x{self.height}")
        if self.width * self.height > 20_000 * 20_000:
            raise InputError(
                f"a chip grid of {self.width}x{self.height} pixels is too large; "
                "use a coarser resolution or a smaller AOI"
            )

    @classmethod
    def for_bounds(cls, bounds: BBox, crs: CRS | str, resolution: float) -> ChipGrid:
        """The grid covering ``bounds`` (in ``crs`` units), origin snapped to the resolution."""
        if not resolution > 0:
            raise InputError(f"resolution must be positive, got {resolution}")
        x0, y0, x1, y1 = bounds
        left = math.floor(x0 / resolution) * resolution
        top = math.ceil(y1 / resolution) * resolution
        right = math.ceil(x1 / resolution) * resolution
        bottom = math.floor(y0 / resolution) * resolution
        width = max(1, round((right - left) / resolution))
        height = max(1, round((top - bottom) / resolution))
        crs_s = crs.to_string() if isinstance(crs, CRS) else str(crs)
        return cls(crs_s, Affine(resolution, 0.0, left, 0.0, -resolution, top), width, height)

    @classmethod
    def around(
        cls,
        lon: float,
        lat: float,
        size_m: float = 1000.0,
        resolution: float = 10.0,
        crs: CRS | str | None = None,
    ) -> ChipGrid:
        """A square of ``size_m`` centred on a lon/lat point, in its local UTM zone by default."""
        if not size_m > 0:
            raise InputError(f"chip size must be positive, got {size_m} m")
        target = CRS.from_user_input(crs) if crs is not None else local_utm_crs(lon, lat)
        from shapely.geometry import Point

        centre = to_crs(Point(lon, lat), "EPSG:4326", target)
        half = size_m / 2.0
        x, y = centre.x, centre.y
        return cls.for_bounds((x - half, y - half, x + half, y + half), target, resolution)

    @classmethod
    def for_aoi(
        cls, aoi: BaseGeometry, resolution: float = 10.0, crs: CRS | str | None = None
    ) -> ChipGrid:
        """The grid covering a lon/lat AOI polygon, in the UTM zone of its centroid by default."""
        if aoi.is_empty:
            raise InputError("the AOI is empty")
        c = aoi.centroid
        lon = ((c.x + 180.0) % 360.0) - 180.0
        target = CRS.from_user_input(crs) if crs is not None else local_utm_crs(lon, c.y)
        return cls.for_bounds(to_crs(aoi, "EPSG:4326", target).bounds, target, resolution)

    @property
    def resolution(self) -> float:
        """Pixel size in CRS units (metres for UTM)."""
        return float(abs(self.transform.a))

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.height, self.width)

    @property
    def bounds(self) -> BBox:
        """(left, bottom, right, top) in the grid CRS."""
        left, top = self.transform.c, self.transform.f
        return (
            left,
            top + self.transform.e * self.height,
            left + self.transform.a * self.width,
            top,
        )

    def lonlat_bbox(self) -> BBox:
        """The lon/lat bbox of the grid (``west > east`` across the antimeridian)."""
        w, s, e, n = transform_bounds(self.crs, "EPSG:4326", *self.bounds, densify_pts=21)
        return (float(w), float(s), float(e), float(n))

    def coords(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Pixel-centre x and y coordinates."""
        t = self.transform
        xs = np.asarray(t.c + t.a * (np.arange(self.width) + 0.5), dtype=np.float64)
        ys = np.asarray(t.f + t.e * (np.arange(self.height) + 0.5), dtype=np.float64)
        return xs, ys


@dataclass(frozen=True, eq=False)
class Chip:
    """The pixels of one scene on a :class:`ChipGrid`.

    ``data`` is (band, y, x) in the source data type; ``valid`` is False outside the image footprint
    and on nodata; ``cloud`` is True on cloud (None when no cloud mask could be made).
    """

    data: NDArray[Any]
    bands: tuple[str, ...]
    crs: str
    transform: Affine
    valid: NDArray[np.bool_]
    scene: Scene
    cloud: NDArray[np.bool_] | None = None
    nodata: float | None = None

    @property
    def grid(self) -> ChipGrid:
        """The grid of this chip."""
        return ChipGrid(self.crs, self.transform, self.data.shape[2], self.data.shape[1])

    @property
    def coverage(self) -> float:
        """Fraction of the chip with valid pixels."""
        return float(self.valid.mean()) if self.valid.size else 0.0

    @property
    def cloud_fraction(self) -> float | None:
        """Fraction of the valid pixels flagged as cloud (None without a cloud mask)."""
        if self.cloud is None:
            return None
        n = int(self.valid.sum())
        return float((self.cloud & self.valid).sum() / n) if n else 0.0

    def band(self, name: str) -> NDArray[Any]:
        """One band as a 2-D array."""
        try:
            layer: NDArray[Any] = self.data[self.bands.index(name)]
        except ValueError:
            raise ImageryError(
                f"chip of {self.scene.id!r} has no band {name!r}; it has {', '.join(self.bands)}"
            ) from None
        return layer

    def masked(self, *, clouds: bool = False) -> NDArray[np.float32]:
        """The data as float32 with NaN where invalid (and on cloud when ``clouds``)."""
        out = self.data.astype(np.float32)
        bad = ~self.valid
        if clouds and self.cloud is not None:
            bad = bad | self.cloud
        out[:, bad] = np.nan
        return out

    def replace(self, **changes: Any) -> Chip:
        """A copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **changes)


def _resampling(name: str | Resampling) -> Resampling:
    if isinstance(name, Resampling):
        return name
    try:
        return Resampling[name]
    except KeyError:
        choices = ", ".join(r.name for r in Resampling if r.value < 14)
        raise InputError(f"unknown resampling {name!r}; choose one of {choices}") from None


def _overview_level(ds: Any, bidx: int, grid: ChipGrid) -> int | None:
    """The coarsest overview level still finer than the grid, or None for full resolution."""
    factors = ds.overviews(bidx)
    if not factors:
        return None
    try:
        src_res_m = _source_res_in_grid_units(ds, grid)
    except Exception:  # pyproj failures: fall back to full resolution
        return None
    ratio = grid.resolution / src_res_m
    level = None
    for i, f in enumerate(factors):
        if f <= ratio * 1.001:
            level = i
    return level


def _source_res_in_grid_units(ds: Any, grid: ChipGrid) -> float:
    left, bottom, right, top = transform_bounds(ds.crs, grid.crs, *ds.bounds, densify_pts=21)
    return float(min((right - left) / ds.width, (top - bottom) / ds.height))


def _read_group(
    reader: SceneReader,
    bands: Sequence[str],
    grid: ChipGrid,
    resampling: Resampling,
) -> tuple[NDArray[Any], NDArray[np.bool_], float | None]:
    """Read bands that live in one file onto the grid: (data, valid, nodata)."""
    scene = reader.scene
    first = bands[0]
    href = reader.href(first)
    indexes = [scene.band_index[b] for b in bands]
    try:
        ds = reader.dataset(first)
        level = _overview_level(ds, indexes[0], grid)
        if level is not None:
            ds = reader.dataset(first, overview_level=level)
        nodata = ds.nodata
        for i in indexes:
            if i > ds.count:
                raise ImageryError(
                    f"{href} has {ds.count} band(s), but scene {scene.id!r} expects band {i}"
                )
        options: dict[str, Any] = {
            "crs": grid.crs,
            "transform": grid.transform,
            "width": grid.width,
            "height": grid.height,
            "resampling": resampling,
        }
        if nodata is not None:
            options.update(src_nodata=nodata, nodata=nodata)
            with WarpedVRT(ds, **options) as vrt:
                data = vrt.read(indexes)
                valid = vrt.dataset_mask() > 0
                if isinstance(nodata, float) and math.isnan(nodata):
                    valid &= ~np.isnan(data).any(axis=0)
        else:
            with WarpedVRT(ds, add_alpha=True, **options) as vrt:
                data = vrt.read(indexes)
                valid = vrt.read(vrt.count) > 0
    except RasterioError as exc:
        raise ImageryError(
            f"cannot read {href} (scene {scene.id!r}): {gdal_text(exc)}. The file may be corrupt or "
            "truncated; re-download it (an archive fetch re-checks checksums)"
        ) from exc
    return data, valid, nodata


def cloud_score(
    data: NDArray[Any],
    bands: Sequence[str],
    *,
    scale: float | None = None,
    offset: float = 0.0,
    brightness: float | None = None,
    whiteness: float = 0.7,
    max_ndvi: float = 0.2,
) -> NDArray[np.bool_] | None:
    """A simple cloud mask from visible bands: bright, white (flat spectrum), not vegetated.

    Reflectance is ``data * scale + offset`` (default scale: 1/10000 for 16-bit data, 1/255 for
    8-bit; Landsat collection 2 level 2 declares 2.75e-5 and -0.2). A pixel is
    cloud when its mean visible reflectance exceeds ``brightness`` (default 0.3; 0.7 for 8-bit
    display-stretched data), its whiteness (the Fmask ``sum |b - mean| / mean`` over blue, green,
    red) is below ``whiteness`` and, when a ``nir`` band is present, its NDVI is below ``max_ndvi``.
    Returns None without the three visible bands.
    """
    names = ("blue", "green", "red")
    if not all(n in bands for n in names):
        return None
    eight_bit = data.dtype == np.uint8
    if scale is None:
        scale = 1 / 255.0 if eight_bit else 1e-4 if data.dtype.kind in "iu" else 1.0
    if brightness is None:
        brightness = 0.7 if eight_bit else 0.3
    order = list(bands)
    vis = np.stack([data[order.index(n)] for n in names]).astype(np.float32) * scale + offset
    mean = vis.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        white = np.abs(vis - mean).sum(axis=0) / mean
        mask: NDArray[np.bool_] = (mean > brightness) & (white < whiteness)
        if "nir" in order:
            nir = data[order.index("nir")].astype(np.float32) * scale + offset
            red = vis[2]
            ndvi = (nir - red) / (nir + red)
            mask &= ~(ndvi >= max_ndvi)
    return mask


MIN_CLOUD_AREA_M2 = 50_000.0
"""Bright, white patches smaller than this (5 ha) are roofs, concrete or spoil, not clouds."""


def drop_small_clouds(
    cloud: NDArray[np.bool_], resolution: float, min_area_m2: float = MIN_CLOUD_AREA_M2
) -> NDArray[np.bool_]:
    """Keep only cloud patches of at least ``min_area_m2``: the spectral score alone flags new
    concrete and fresh spoil, which are exactly what site monitoring must see."""
    from skimage.morphology import remove_small_objects

    min_px = int(np.ceil(min_area_m2 / (resolution * resolution)))
    if min_px <= 1 or not cloud.any():
        return cloud
    return np.asarray(remove_small_objects(cloud, max_size=min_px - 1, connectivity=2))


def _mask_from_qa(
    reader: SceneReader, grid: ChipGrid, band: str
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(cloud, valid) from a Sentinel-2 SCL or Landsat QA_PIXEL layer."""
    qa, valid, _ = _read_group(reader, [band], grid, Resampling.nearest)
    layer = qa[0]
    if band == "scl":
        cloud = np.isin(layer, SCL_CLOUD)
        valid = valid & ~np.isin(layer, SCL_NODATA)
    else:
        bits = layer.astype(np.uint32)
        cloud = np.zeros(layer.shape, dtype=bool)
        for bit in QA_CLOUD_BITS:
            cloud |= (bits >> bit) & 1 == 1
        valid = valid & ((bits >> QA_FILL_BIT) & 1 == 0)
    return cloud, valid


def harmonise_dn(
    stack: NDArray[Any], bands: Sequence[str], offsets: Mapping[str, Any], valid: NDArray[np.bool_]
) -> None:
    """Add each band's DN offset (:data:`~.scene.DN_OFFSETS`) to its valid pixels, in place.

    Integer data stay integers: rounded and clipped to the type, and at 1 from below for unsigned
    types, so that a dark pixel does not turn into the no-data value 0.
    """
    integer = np.issubdtype(stack.dtype, np.integer)
    lo, hi = (0.0, 0.0)
    if integer:
        info = np.iinfo(stack.dtype)
        lo, hi = (1.0 if info.min == 0 else float(info.min)), float(info.max)
    for i, b in enumerate(bands):
        off = float(offsets.get(b) or 0.0)
        if not off:
            continue
        layer = stack[i].astype(np.float64) + off
        if integer:
            layer = np.clip(np.rint(layer), lo, hi)
        stack[i] = np.where(valid, layer, stack[i]).astype(stack.dtype)


def read_chip(
    reader: SceneReader,
    grid: ChipGrid,
    bands: Sequence[str] | None = None,
    *,
    resampling: str | Resampling = "bilinear",
    cloud_mask: CloudMethod = "auto",
) -> Chip:
    """Cut one scene (through an open reader) to ``grid``; bands by common name.

    ``cloud_mask``: ``auto`` uses Sentinel-2 SCL or Landsat QA_PIXEL when the scene has them and
    the brightness/whiteness :func:`cloud_score` otherwise, keeping only patches of at least
    :data:`MIN_CLOUD_AREA_M2` (:func:`drop_small_clouds`); ``none`` skips it.
    """
    scene = reader.scene
    wanted = tuple(bands) if bands else scene.spectral_bands
    missing = [b for b in wanted if b not in scene.assets]
    if missing:
        raise ImageryError(
            f"scene {scene.id!r} ({scene.sensor}) has no band {', '.join(missing)}; "
            f"it has {', '.join(scene.bands)}"
        )
    box = grid.lonlat_bbox()
    if scene.bounds is not None and not bbox_intersects(scene.bounds, box):
        w, s, e, n = scene.bounds
        raise ImageryError(
            f"scene {scene.id!r} (lon/lat {w:.4f},{s:.4f},{e:.4f},{n:.4f}) does not cover the "
            f"chip (lon/lat {box[0]:.4f},{box[1]:.4f},{box[2]:.4f},{box[3]:.4f}); search the "
            "scenes of this AOI first"
        )
    rs = _resampling(resampling)
    groups: dict[str, list[str]] = {}
    for b in wanted:
        groups.setdefault(scene.assets[b], []).append(b)
    parts: dict[str, NDArray[Any]] = {}
    valid = np.ones(grid.shape, dtype=bool)
    nodata: float | None = None
    for members in groups.values():
        data, ok, nd = _read_group(reader, members, grid, rs)
        valid &= ok
        nodata = nd if nodata is None else nodata
        for b, layer in zip(members, data, strict=True):
            parts[b] = layer
    dtype = np.result_type(*(p.dtype for p in parts.values()))
    stack = np.empty((len(wanted), *grid.shape), dtype=dtype)
    for i, b in enumerate(wanted):
        stack[i] = parts[b]
    offsets = scene.properties.get(DN_OFFSETS)
    if offsets:
        harmonise_dn(stack, wanted, offsets, valid)
    cloud: NDArray[np.bool_] | None = None
    method = cloud_mask
    if method == "auto":
        method = (
            "scl"
            if "scl" in scene.assets
            else "qa_pixel"
            if "qa_pixel" in scene.assets
            else "score"
        )
    if method in ("scl", "qa_pixel"):
        if method not in scene.assets:
            raise ImageryError(f"scene {scene.id!r} has no {method} layer for a cloud mask")
        cloud, qa_valid = _mask_from_qa(reader, grid, method)
        valid &= qa_valid
    elif method == "score":
        declared = reflectance_of(scene)
        cloud = cloud_score(
            stack,
            wanted,
            scale=declared[0] if declared else None,
            offset=declared[1] if declared else 0.0,
        )
        if cloud is not None:
            cloud = drop_small_clouds(cloud, grid.resolution)
    if cloud is not None:
        cloud = cloud & valid
    return Chip(
        data=stack,
        bands=wanted,
        crs=grid.crs,
        transform=grid.transform,
        valid=valid,
        scene=scene,
        cloud=cloud,
        nodata=nodata,
    )


def cut_chip(
    source: ImagerySource,
    scene: Scene,
    grid: ChipGrid,
    bands: Sequence[str] | None = None,
    **options: Any,
) -> Chip:
    """Open ``scene`` through its source and cut it to ``grid`` (see :func:`read_chip`)."""
    with source.open(scene) as reader:
        return read_chip(reader, grid, bands, **options)
