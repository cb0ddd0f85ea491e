"""Land cover: classes, their reflectances per band and season, and the seeded class map."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import InputError
from .terrain import SceneGrid, fractal_noise

__all__ = ["CLASSES", "CODES", "REFLECTANCE", "landcover_map", "reflectance"]

F32 = NDArray[np.float32]

# surface reflectance per band: blue, green, red, nir, swir16, swir22
REFLECTANCE: dict[str, tuple[float, ...]] = {
    "forest": (0.025, 0.045, 0.030, 0.300, 0.150, 0.070),
    "grass": (0.040, 0.080, 0.060, 0.330, 0.220, 0.110),
    "crop": (0.035, 0.085, 0.045, 0.420, 0.200, 0.090),
    "soil": (0.080, 0.110, 0.150, 0.220, 0.300, 0.260),
    "rock": (0.120, 0.140, 0.160, 0.200, 0.260, 0.230),
    "road": (0.090, 0.100, 0.110, 0.130, 0.170, 0.160),
    "gravel": (0.110, 0.120, 0.135, 0.180, 0.240, 0.220),
    "concrete": (0.220, 0.240, 0.250, 0.270, 0.300, 0.280),
    "metal_roof": (0.180, 0.200, 0.210, 0.230, 0.200, 0.180),
    "spoil": (0.200, 0.210, 0.225, 0.260, 0.360, 0.320),
    "dark": (0.010, 0.010, 0.010, 0.012, 0.012, 0.010),
}
_WINTER_FOREST = (0.040, 0.050, 0.050, 0.200, 0.200, 0.120)
_BAND_INDEX = {"blue": 0, "green": 1, "red": 2, "nir": 3, "swir16": 4, "swir22": 5}

CLASSES: tuple[str, ...] = tuple(REFLECTANCE)
CODES: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}


def landcover_map(
    grid: SceneGrid, dem: NDArray[np.float64], rng: np.random.Generator, uniform: str = "auto"
) -> tuple[NDArray[np.int16], NDArray[np.int32]]:
    """Class codes of the image pixels and a parcel id (fields vary by parcel through the year).

    ``uniform`` set to a class name gives a single class everywhere (for controlled tests).
    """
    shape = (grid.height, grid.width)
    parcels = np.zeros(shape, dtype=np.int32)
    if uniform != "auto":
        if uniform not in CODES:
            raise InputError(f"unknown land cover {uniform!r}; choose 'auto' or one of {CLASSES}")
        return np.full(shape, CODES[uniform], dtype=np.int16), parcels
    m = grid.margin
    core = dem[m : m + grid.height, m : m + grid.width]
    smooth = ndimage.gaussian_filter(core, sigma=max(2.0, 3.0 / grid.gsd))
    gy, gx = np.gradient(smooth, grid.gsd)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    noise = ndimage.zoom(
        fractal_noise(rng, (max(8, grid.height // 4), max(8, grid.width // 4)), beta=2.0),
        (grid.height / max(8, grid.height // 4), grid.width / max(8, grid.width // 4)),
        order=1,
    )[: grid.height, : grid.width]
    out = np.full(shape, CODES["grass"], dtype=np.int16)
    out[(noise > -0.4) & (slope > 6.0)] = CODES["forest"]
    out[(slope > 38.0) | ((slope > 25.0) & (noise < -0.9))] = CODES["rock"]
    # fields on the flat floor: Voronoi parcels of ~35 m
    floor = slope < 6.0
    n_seeds = max(4, int(grid.width * grid.height * grid.gsd**2 / 35.0**2))
    seeds = rng.uniform(0, 1, (n_seeds, 2)) * np.array([grid.height, grid.width])
    step = 4
    rr, cc = np.mgrid[0 : grid.height : step, 0 : grid.width : step]
    _, ids = cKDTree(seeds).query(np.column_stack([rr.ravel(), cc.ravel()]))
    ids_full = np.repeat(np.repeat(ids.reshape(rr.shape), step, 0), step, 1)
    ids_full = ids_full[: grid.height, : grid.width].astype(np.int32) + 1
    kind = rng.random(n_seeds + 1)
    field_class = np.where(kind < 0.55, CODES["crop"], np.where(kind < 0.8, CODES["grass"], -1))
    fc = field_class[ids_full]
    fields = floor & (fc >= 0)
    out[fields] = fc[fields]
    parcels[fields] = ids_full[fields]
    return out, parcels


def _greenness(doy: float, phase: float) -> float:
    """Seasonal green-up 0..1 peaking near mid-summer (+ ``phase`` days)."""
    return 0.5 + 0.5 * math.cos(2.0 * math.pi * (doy - 200.0 - phase) / 365.25)


def reflectance(
    classes: NDArray[np.int16],
    parcels: NDArray[np.int32],
    bands: tuple[str, ...],
    when: datetime,
    texture: NDArray[np.float32] | None,
    rng_phase: NDArray[np.float64],
) -> F32:
    """Surface reflectance cube (band, row, col) for the date: crops green up and are harvested
    by parcel, deciduous forest browns in winter."""
    doy = when.timetuple().tm_yday
    table = np.array([REFLECTANCE[c] for c in CLASSES], dtype=np.float32)
    g_forest = _greenness(doy, 0.0) ** 0.5
    winter = np.array(_WINTER_FOREST, dtype=np.float32)
    table[CODES["forest"]] = g_forest * table[CODES["forest"]] + (1 - g_forest) * winter
    out = np.empty((len(bands), *classes.shape), dtype=np.float32)
    crop = classes == CODES["crop"]
    if crop.any():
        g_parcel = np.array(
            [_greenness(doy, float(p)) for p in rng_phase], dtype=np.float32
        )  # one phase per parcel id
        g = g_parcel[np.clip(parcels, 0, len(g_parcel) - 1)]
    for k, band in enumerate(bands):
        bi = _BAND_INDEX[band]
        layer = table[:, bi][classes]
        if crop.any():
            soil = REFLECTANCE["soil"][bi]
            green = REFLECTANCE["crop"][bi]
            layer = np.where(crop, soil + g * (green - soil), layer)
        if texture is not None:
            layer = layer * texture
        out[k] = layer
    return out
