"""Time-series cubes: chips of many dates stacked into an xarray ``DataArray`` (time, band, y, x).

Every date is cut to the same :class:`~sitewatch.imagery.chips.ChipGrid`, so the cube is aligned
pixel for pixel. Per-date metadata travels as coordinates along ``time`` (scene id, sensor, sun and
view angles, cloud cover, GSD) and the masks as ``valid`` and ``cloud`` coordinates (time, y, x).
The CRS and affine transform are in ``attrs``; ``attrs["units"]`` is ``reflectance`` when the cube
is float and every scene declares its reflectance scale (:data:`~.scene.REFLECTANCE`: Sentinel-2,
Landsat collection 2 level 2), so that sensors mix, else ``dn``. Small cubes are read at once on a
thread pool; large ones (or ``lazy=True``) are dask arrays with one task per date.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from ..errors import ImageryError, InputError
from .chips import Chip, ChipGrid, CloudMethod, read_chip
from .scene import Scene, reflectance_of
from .sources.base import ImagerySource, SceneReader

__all__ = ["LAZY_BYTES", "build_cube", "stack_chips"]

log = logging.getLogger(__name__)

LAZY_BYTES = 2 * 1024**3
"""Cubes larger than this are built lazily (dask) unless ``lazy`` says otherwise."""

SceneLike = Scene | tuple[ImagerySource, Scene]


def _pair(item: SceneLike, source: ImagerySource | None) -> tuple[ImagerySource | None, Scene]:
    if isinstance(item, tuple):
        return item[0], item[1]
    return source, item


def _open(source: ImagerySource | None, scene: Scene) -> SceneReader:
    return source.open(scene) if source is not None else SceneReader(scene)


def _time(scene: Scene) -> np.datetime64:
    return np.datetime64(scene.datetime.replace(tzinfo=None), "ns")


def _num(value: float | None) -> float:
    return float(value) if value is not None else np.nan


def _time_coords(scenes: Sequence[Scene]) -> dict[str, Any]:
    return {
        "time": ("time", np.array([_time(s) for s in scenes], dtype="datetime64[ns]")),
        "scene_id": ("time", np.array([s.id for s in scenes], dtype=object)),
        "sensor": ("time", np.array([s.sensor for s in scenes], dtype=object)),
        "sun_azimuth": ("time", np.array([_num(s.sun_azimuth) for s in scenes])),
        "sun_elevation": ("time", np.array([_num(s.sun_elevation) for s in scenes])),
        "off_nadir": ("time", np.array([_num(s.off_nadir) for s in scenes])),
        "view_azimuth": ("time", np.array([_num(s.view_azimuth) for s in scenes])),
        "cloud_cover": ("time", np.array([_num(s.cloud_cover) for s in scenes])),
        "gsd": ("time", np.array([_num(s.gsd) for s in scenes])),
    }


def _attrs(grid: ChipGrid, nodata: float | None, resampling: str) -> dict[str, Any]:
    t = grid.transform
    return {
        "crs": grid.crs,
        "transform": (t.a, t.b, t.c, t.d, t.e, t.f),
        "resolution": grid.resolution,
        "nodata": nodata if nodata is not None else np.nan,
        "resampling": resampling,
    }


def stack_chips(
    chips: Sequence[Chip],
    *,
    dtype: str | np.dtype[Any] | None = None,
    bands: Sequence[str] | None = None,
) -> xr.DataArray:
    """Stack chips of one grid into a (time, band, y, x) cube, oldest first.

    With a float ``dtype`` invalid pixels become NaN; otherwise they keep the fill value
    (``attrs["nodata"]``). ``bands`` picks those bands of every chip (chips cut with different
    band sets); without it the chips must share one band list.
    """
    if not chips:
        raise InputError("no chips to stack")
    if bands is not None:
        chips = [_pick(c, bands) for c in chips]
    chips = sorted(chips, key=lambda c: (c.scene.datetime, c.scene.id))
    first = chips[0]
    for c in chips[1:]:
        if (
            c.crs != first.crs
            or c.transform != first.transform
            or c.data.shape[1:] != first.data.shape[1:]
        ):
            raise InputError(
                f"chip of {c.scene.id!r} is on another grid than {first.scene.id!r}; "
                "cut every chip with the same ChipGrid"
            )
        if c.bands != first.bands:
            raise InputError(
                f"chip of {c.scene.id!r} has bands {c.bands}, {first.scene.id!r} has {first.bands}"
            )
    out_dtype = (
        np.dtype(dtype) if dtype is not None else np.result_type(*(c.data.dtype for c in chips))
    )
    data = np.empty((len(chips), len(first.bands), *first.data.shape[1:]), dtype=out_dtype)
    valid = np.empty((len(chips), *first.data.shape[1:]), dtype=bool)
    cloud = np.zeros_like(valid)
    scales = _reflectance([c.scene for c in chips]) if out_dtype.kind == "f" else None
    for i, c in enumerate(chips):
        data[i] = _scaled(c.data, scales[i] if scales is not None else None)
        valid[i] = c.valid
        if c.cloud is not None:
            cloud[i] = c.cloud
        if out_dtype.kind == "f":
            data[i][:, ~c.valid] = np.nan
    cube = _assemble(
        data, valid, cloud, [c.scene for c in chips], first.bands, first.grid, first.nodata, ""
    )
    cube.attrs["units"] = "reflectance" if scales is not None else "dn"
    return cube


def _pick(chip: Chip, bands: Sequence[str]) -> Chip:
    missing = [b for b in bands if b not in chip.bands]
    if missing or not bands:
        raise ImageryError(
            f"chip of {chip.scene.id!r} has bands {', '.join(chip.bands)}, not "
            f"{', '.join(missing) or 'none asked for'}; choose bands every scene has"
        )
    if tuple(bands) == chip.bands:
        return chip
    return replace(chip, data=chip.data[[chip.bands.index(b) for b in bands]], bands=tuple(bands))


def _scaled(data: NDArray[Any], scale: tuple[float, float] | None) -> NDArray[Any]:
    """DN as they are, or ``DN * gain + offset`` (reflectance) in float64."""
    if scale is None:
        return data
    return data.astype(np.float64) * scale[0] + scale[1]


def _reflectance(scenes: Sequence[Scene]) -> list[tuple[float, float]] | None:
    """Each scene's (scale, offset) to reflectance when every one declares it, else None (and a
    warning when only some do: their digital numbers are on different scales)."""
    found = [reflectance_of(s) for s in scenes]
    if all(f is not None for f in found):
        return [f for f in found if f is not None]
    if len({f for f in found}) > 1:
        known = sorted({s.sensor for s, f in zip(scenes, found, strict=True) if f is not None})
        unknown = sorted({s.sensor for s, f in zip(scenes, found, strict=True) if f is None})
        log.warning(
            "the cube mixes scenes whose reflectance scale is known (%s) with scenes where it is "
            "not (%s): their digital numbers are compared as they are; keep one sensor per "
            "series, or use sources that declare raster:bands scale and offset",
            ", ".join(known),
            ", ".join(unknown),
        )
    return None


def _assemble(
    data: Any,
    valid: Any,
    cloud: Any,
    scenes: Sequence[Scene],
    bands: Sequence[str],
    grid: ChipGrid,
    nodata: float | None,
    resampling: str,
) -> xr.DataArray:
    xs, ys = grid.coords()
    coords = _time_coords(scenes)
    coords.update(
        band=("band", list(bands)),
        y=("y", ys),
        x=("x", xs),
        valid=(("time", "y", "x"), valid),
        cloud=(("time", "y", "x"), cloud),
    )
    return xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords=coords,
        name="reflectance",
        attrs=_attrs(grid, nodata, resampling),
    )


def _probe_dtype(source: ImagerySource | None, scene: Scene, bands: Sequence[str]) -> np.dtype[Any]:
    hrefs = {scene.assets[b] for b in bands}
    dtypes = []
    with _open(source, scene) as reader:
        for b in bands:
            if scene.assets[b] in hrefs:
                hrefs.discard(scene.assets[b])
                ds = reader.dataset(b)
                dtypes.append(np.dtype(ds.dtypes[scene.band_index[b] - 1]))
    return np.result_type(*dtypes)


def build_cube(
    scenes: Sequence[SceneLike],
    grid: ChipGrid,
    bands: Sequence[str] | None = None,
    *,
    source: ImagerySource | None = None,
    resampling: str = "bilinear",
    cloud_mask: CloudMethod = "auto",
    dtype: str | np.dtype[Any] | None = None,
    lazy: bool | None = None,
    workers: int | None = None,
    on_error: str = "raise",
    min_coverage: float = 0.0,
) -> xr.DataArray:
    """Cut every scene to ``grid`` and stack them (time, band, y, x), oldest first.

    ``scenes`` are scenes (read through ``source`` or directly) or (source, scene) pairs as
    :func:`~sitewatch.imagery.sources.base.find_scenes` returns. ``bands`` default to the bands every
    scene has. ``dtype``: None keeps the source type (invalid pixels hold ``attrs["nodata"]``), a
    float type puts NaN there. Eager builds drop dates with ``coverage <= min_coverage`` (no valid
    pixel by default); ``on_error="skip"`` drops dates that cannot be read instead of raising.
    """
    if not scenes:
        raise InputError("no scenes to build a cube from; search the source first")
    pairs = sorted((_pair(s, source) for s in scenes), key=lambda p: (p[1].datetime, p[1].id))
    if bands is None:
        common = set(pairs[0][1].spectral_bands)
        for _, sc in pairs[1:]:
            common &= set(sc.spectral_bands)
        bands = [b for b in pairs[0][1].spectral_bands if b in common]
        if not bands:
            raise ImageryError("the scenes share no band; pass bands=... explicitly")
    bands = list(bands)
    for _, sc in pairs:
        missing = [b for b in bands if b not in sc.assets]
        if missing:
            raise ImageryError(
                f"scene {sc.id!r} has no band {', '.join(missing)} (it has {', '.join(sc.bands)}); "
                "choose bands every scene has"
            )
    itemsize = 8 if dtype is None else np.dtype(dtype).itemsize
    size = len(pairs) * len(bands) * grid.width * grid.height * itemsize
    if lazy is None:
        lazy = size > LAZY_BYTES
    if lazy:
        return _lazy_cube(pairs, grid, bands, resampling, cloud_mask, dtype)

    def one(pair: tuple[ImagerySource | None, Scene]) -> Chip | None:
        src, sc = pair
        try:
            with _open(src, sc) as reader:
                return read_chip(reader, grid, bands, resampling=resampling, cloud_mask=cloud_mask)
        except ImageryError as exc:
            if on_error != "skip":
                raise
            log.warning("skipping scene %s: %s", sc.id, exc)
            return None

    n_workers = workers or min(len(pairs), max(2, (os.cpu_count() or 2) * 2), 16)
    if n_workers > 1 and len(pairs) > 1:
        with ThreadPoolExecutor(n_workers, thread_name_prefix="sitewatch-cube") as pool:
            chips = list(pool.map(one, pairs))
    else:
        chips = [one(p) for p in pairs]
    kept = [c for c in chips if c is not None and c.coverage > min_coverage]
    dropped = [
        p[1].id for p, c in zip(pairs, chips, strict=True) if c is not None and c not in kept
    ]
    if dropped:
        log.info("dropped %d date(s) with coverage <= %g: %s", len(dropped), min_coverage, dropped)
    if not kept:
        raise ImageryError(
            f"none of the {len(pairs)} scene(s) has valid pixels on the grid "
            f"(lon/lat {', '.join(f'{v:.4f}' for v in grid.lonlat_bbox())}); "
            "the AOI is outside the images or they hold only nodata there"
        )
    cube = stack_chips(kept, dtype=dtype)
    cube.attrs["resampling"] = resampling
    return cube


def _lazy_cube(
    pairs: Sequence[tuple[ImagerySource | None, Scene]],
    grid: ChipGrid,
    bands: Sequence[str],
    resampling: str,
    cloud_mask: CloudMethod,
    dtype: str | np.dtype[Any] | None,
) -> xr.DataArray:
    import dask.array as da
    from dask.delayed import delayed as _delayed

    delayed: Any = _delayed
    from_delayed: Any = da.from_delayed
    stack: Any = da.stack

    src0, sc0 = pairs[0]
    native = _probe_dtype(src0, sc0, bands)
    out_dtype = np.dtype(dtype) if dtype is not None else native
    nb = len(bands)
    with _open(src0, sc0) as reader:
        nodata = reader.dataset(bands[0]).nodata

    scales = _reflectance([p[1] for p in pairs]) if out_dtype.kind == "f" else None
    to_refl = dict(zip((p[1].id for p in pairs), scales, strict=True)) if scales else {}

    def load(src: ImagerySource | None, sc: Scene) -> NDArray[Any]:
        with _open(src, sc) as r:
            chip = read_chip(r, grid, bands, resampling=resampling, cloud_mask=cloud_mask)
        out = np.empty((nb + 2, *grid.shape), dtype=out_dtype)
        out[:nb] = _scaled(chip.data, to_refl.get(sc.id))
        if out_dtype.kind == "f":
            out[:nb, ~chip.valid] = np.nan
        out[nb] = chip.valid
        out[nb + 1] = chip.cloud if chip.cloud is not None else False
        return out

    stacks = [
        from_delayed(delayed(load)(src, sc), shape=(nb + 2, *grid.shape), dtype=out_dtype)
        for src, sc in pairs
    ]
    full = stack(stacks)
    data = full[:, :nb]
    valid = full[:, nb].astype(bool)
    cloud = full[:, nb + 1].astype(bool)
    cube = _assemble(data, valid, cloud, [p[1] for p in pairs], bands, grid, nodata, resampling)
    cube.attrs["units"] = "reflectance" if scales is not None else "dn"
    return cube
