"""Planting synthetic site signatures into real background imagery (for ``search eval``).

A site is a random compact layout of scenario features (:class:`sitewatch.scenario.spec.FeatureSpec`):
an access road and a concrete apron, one or two drive-through shelters, earth berms or a
revetment, and a tunnel portal with its spoil. The scenario generator builds the height field and
materials (:func:`sitewatch.scenario.render.pixel_surface`), the cast shadows
(:func:`~sitewatch.scenario.render.shadow_fraction`) and the slope illumination
(:func:`~sitewatch.scenario.render.illumination`); here they are composited into a real image:
feature pixels take the material's reflectance times a per-band gain that maps reflectance to
the image's digital numbers (so that grass reflectance lands on the image's median), and every
pixel is darkened by the shadow it lies in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..scenario.landcover import REFLECTANCE
from ..scenario.render import SKY_FRACTION, illumination, pixel_surface, shadow_fraction
from ..scenario.spec import FeatureSpec
from ..scenario.terrain import SceneGrid

__all__ = ["PlantedSite", "plant_site", "random_layout"]

_BAND_INDEX = {"blue": 0, "green": 1, "red": 2, "nir": 3, "swir16": 4, "swir22": 5}


@dataclass(frozen=True)
class PlantedSite:
    """Where a site was planted: centre pixel (row, col) of the image, its extent in px, and the
    image pixels its features cover (``rows``, ``cols``: what a reviewer of a chip would see)."""

    row: float
    col: float
    radius_px: float
    n_features: int
    rows: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp), compare=False)
    cols: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp), compare=False)


def _feature(
    kind: str, x: float, y: float, length: float, width: float, az: float, h: float,
    profile: str, material: str, **kw: float,
) -> FeatureSpec:  # fmt: skip
    return FeatureSpec(
        id=f"{kind}-{x:.0f}-{y:.0f}", kind=kind, x=x, y=y, length_m=length, width_m=width,
        azimuth_deg=az % 360.0, heights_m=(h,), profile=profile,  # type: ignore[arg-type]
        material=material, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def random_layout(rng: np.random.Generator, cx: float, cy: float) -> list[FeatureSpec]:
    """A compact site (about 150 m across) centred on (cx, cy) metres, random orientation."""
    az = float(rng.uniform(0, 180))
    rad = math.radians(az)
    ux, uy = math.sin(rad), math.cos(rad)  # along the site axis
    vx, vy = -uy, ux

    def at(u: float, v: float) -> tuple[float, float]:
        return cx + u * ux + v * vx, cy + u * uy + v * vy

    feats = []
    road_len = float(rng.uniform(90, 160))
    x, y = at(-road_len / 2 - 20, 0)
    feats.append(
        _feature("road", x, y, road_len, float(rng.uniform(6, 9)), az, 1.0, "flat", "gravel")
    )
    x, y = at(0, 0)
    feats.append(_feature("apron", x, y, float(rng.uniform(35, 55)), float(rng.uniform(25, 40)),
                          az, 1.0, "flat", "concrete"))  # fmt: skip
    for i in range(int(rng.integers(1, 3))):
        x, y = at(float(rng.uniform(-10, 10)), (-1) ** i * float(rng.uniform(22, 32)))
        feats.append(_feature("drive_through_shelter", x, y, float(rng.uniform(28, 40)),
                              float(rng.uniform(10, 14)), az, float(rng.uniform(7, 10)), "box",
                              str(rng.choice(["metal_roof", "concrete"]))))  # fmt: skip
    if rng.random() < 0.6:
        for side in (-1, 1):
            x, y = at(float(rng.uniform(-5, 5)), side * float(rng.uniform(45, 55)))
            feats.append(_feature("berm", x, y, float(rng.uniform(50, 70)), 10.0, az,
                                  float(rng.uniform(3, 5)), "berm", "soil", crest_m=2.0))  # fmt: skip
    else:
        x, y = at(float(rng.uniform(35, 45)), 0)
        feats.append(_feature("revetment", x, y, 30.0, 30.0, az + 180.0,
                              float(rng.uniform(4, 6)), "revetment", "soil", wall_m=8.0))  # fmt: skip
    x, y = at(float(rng.uniform(50, 65)), float(rng.uniform(-30, 30)))
    feats.append(_feature("ugf_portal", x, y, 10.0, 8.0, az, 1.0, "flat", "dark"))
    x2, y2 = at(float(rng.uniform(60, 75)), float(rng.uniform(-45, 45)))
    feats.append(_feature("spoil", x2, y2, float(rng.uniform(25, 40)), float(rng.uniform(15, 25)),
                          az + float(rng.uniform(-40, 40)), float(rng.uniform(3, 6)), "berm",
                          "spoil", crest_m=4.0))  # fmt: skip
    return feats


def plant_site(
    image: NDArray[np.floating],
    row: int,
    col: int,
    gsd: float,
    bands: tuple[str, ...],
    gain: NDArray[np.float64],
    rng: np.random.Generator,
    sun: tuple[float, float] = (150.0, 45.0),
    size_px: int | None = None,
) -> PlantedSite:
    """Plant a random site centred on pixel (row, col) of ``image`` (bands, H, W), in place.

    ``gain`` maps reflectance to the image's values per band; ``sun`` is (azimuth, elevation).
    """
    n = size_px or math.ceil(260.0 / gsd) | 1
    half = n // 2
    margin = max(4, math.ceil(25.0 / gsd))
    grid = SceneGrid(epsg=32614, west=0.0, north=n * gsd, gsd=gsd, width=n, height=n,
                     margin=margin, center_lon=0.0, center_lat=0.0)  # fmt: skip
    feats = random_layout(rng, n * gsd / 2.0, n * gsd / 2.0)
    dem = np.zeros(grid.padded_shape, dtype=np.float64)
    background_code = -1
    classes = np.full((n, n), background_code, dtype=np.int16)
    _, smooth, material, flat_top = pixel_surface(grid, dem, feats, 0, classes)
    shadow = shadow_fraction(grid, dem, feats, 0, sun[0], sun[1], oversample=2)
    direct, sky = illumination(smooth, flat_top, gsd, sun[0], sun[1])
    r0, c0 = row - half, col - half
    r1, c1 = r0 + n, c0 + n
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r1, image.shape[1]), min(c1, image.shape[2])
    sl = (slice(rr0 - r0, rr1 - r0), slice(cc0 - c0, cc1 - c0))
    names = list(REFLECTANCE)
    on = material[sl] != background_code
    mat = np.where(on, material[sl], 0)
    for b, name in enumerate(bands):
        k = SKY_FRACTION[name]
        bg = image[b, rr0:rr1, cc0:cc1].astype(np.float64)
        refl = np.array([REFLECTANCE[m][_BAND_INDEX[name]] for m in names])[mat]
        lit_flat = (1.0 - k) * (1.0 - shadow[sl]) + k
        feature_val = gain[b] * refl * ((1.0 - k) * direct[sl] * (1.0 - shadow[sl]) + k * sky[sl])
        out = np.where(on, feature_val, bg * lit_flat)
        delta = ndimage.gaussian_filter(out - bg, 0.5)
        image[b, rr0:rr1, cc0:cc1] = bg + delta
    radius = 0.5 * n
    fr, fc = np.nonzero(on)
    return PlantedSite(float(row), float(col), radius, len(feats), fr + rr0, fc + cc0)


def reflectance_gain(image: NDArray[np.floating], bands: tuple[str, ...]) -> NDArray[np.float64]:
    """Per-band gain so that grass reflectance maps to the image's median value."""
    out = []
    for b, name in enumerate(bands):
        vals = image[b][image[b] > 0]
        med = float(np.median(vals)) if vals.size else 1.0
        out.append(med / REFLECTANCE["grass"][_BAND_INDEX[name]])
    return np.asarray(out, dtype=np.float64)
