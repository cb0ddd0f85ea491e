"""What a scenario is made of: the spec users write, the features it builds, what it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError

__all__ = [
    "BAND_INFO",
    "DEFAULT_BANDS",
    "FeatureSpec",
    "ScenarioResult",
    "ScenarioSpec",
    "acquisition_times",
    "demo_spec",
]

Profile = Literal["box", "berm", "revetment", "cut", "flat"]

DEFAULT_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")

# common name -> (centre wavelength um, full width at half maximum um)
BAND_INFO: dict[str, tuple[float, float]] = {
    "blue": (0.48, 0.06),
    "green": (0.545, 0.07),
    "red": (0.66, 0.06),
    "nir": (0.835, 0.11),
    "swir16": (1.61, 0.09),
    "swir22": (2.19, 0.18),
}


@dataclass(frozen=True)
class FeatureSpec:
    """One site feature, built as a height field over a rotated rectangle.

    ``x``/``y`` is the centre in metres: in the scene CRS inside a built scenario, or as offsets
    east/north of the scene centre when given in :attr:`ScenarioSpec.features`. ``azimuth_deg``
    is the direction of the ``length_m`` axis, clockwise from north. ``heights_m`` holds one height
    per date; 0 means "not there yet" (or removed). Profiles:

    * ``box``: flat-roofed building/shelter, roof at ``base_m + height``;
    * ``berm``: earth ridge (trapezoid section with a ``crest_m`` wide top) added to the terrain;
    * ``revetment``: U-shaped earth wall ``wall_m`` thick, open towards ``-length`` (the road);
    * ``cut``: a tunnel portal cut into a slope: the ground inside is lowered to ``base_m`` (the
      elevation at the mouth, the ``-length`` end); the height is the portal opening's height;
    * ``flat``: a surface with no height (pad, apron).
    """

    id: str
    kind: str
    x: float
    y: float
    length_m: float
    width_m: float
    azimuth_deg: float
    heights_m: tuple[float, ...]
    profile: Profile = "box"
    material: str = "concrete"
    base_m: float = 0.0
    crest_m: float = 2.0
    wall_m: float = 8.0
    site_id: str = ""

    def height_at(self, index: int) -> float:
        """Height at date ``index`` (the last height if the series is shorter)."""
        if not self.heights_m:
            return 0.0
        return float(self.heights_m[min(index, len(self.heights_m) - 1)])

    def present(self, index: int) -> bool:
        """Whether the feature exists at date ``index``."""
        return self.height_at(index) > 0.0 or (self.profile == "flat" and bool(self.heights_m))

    def footprint(self) -> list[tuple[float, float]]:
        """The outline (x, y) of the feature's base, closed ring, counter-clockwise."""
        a, b = self.length_m / 2.0, self.width_m / 2.0
        if self.profile == "revetment":
            t = min(self.wall_m, b, a)
            local = [(-a, -b), (a, -b), (a, b), (-a, b), (-a, b - t), (a - t, b - t),
                     (a - t, -b + t), (-a, -b + t), (-a, -b)]  # fmt: skip
        else:
            local = [(-a, -b), (a, -b), (a, b), (-a, b), (-a, -b)]
        return [self.to_world(u, v) for u, v in local]

    def to_world(self, u: float, v: float) -> tuple[float, float]:
        """Map local (u along the length axis, v to its left) to (x, y)."""
        az = math.radians(self.azimuth_deg)
        ux, uy = math.sin(az), math.cos(az)  # the length axis
        vx, vy = -uy, ux  # 90 degrees counter-clockwise of it
        return (self.x + u * ux + v * vx, self.y + u * uy + v * vy)


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything that determines a scenario; the same spec and seed give identical files.

    ``center`` is (lon, lat); default near Sakkanmol, North Korea. With ``dem`` set and no
    ``center``, the scene is centred on the DEM. ``dates`` is a count (spread over ``span_days``
    from ``start``, at ``local_solar_time`` hours, like a sun-synchronous satellite) or explicit
    UTC datetimes. ``sun_angles`` overrides the computed sun (``(azimuth, elevation)`` per date),
    for tests and evaluations at chosen sun elevations. ``features`` adds explicit features
    (x/y as metres east/north of the centre) to the ``sites`` laid out automatically.
    ``relief_m`` (height of the valley walls) defaults to a fifth of the scene's width.
    """

    seed: int = 0
    sites: int = 1
    dates: int | tuple[datetime, ...] = 6
    start: date = date(2023, 4, 1)
    span_days: int = 730
    local_solar_time: float = 10.5
    center: tuple[float, float] | None = None
    size_px: tuple[int, int] = (1024, 1024)
    gsd: float = 0.5
    bands: tuple[str, ...] = DEFAULT_BANDS
    dem: Path | None = None
    terrain: Literal["mountains", "flat"] = "mountains"
    relief_m: float | None = None
    landcover: str = "auto"
    texture: float = 0.08
    clouds: bool = False
    cloud_cover: float = 0.25
    noise: float = 0.004
    psf_sigma_px: float = 0.6
    shadow_oversample: int = 2
    margin_px: int = 64
    sun_angles: tuple[tuple[float, float], ...] | None = None
    features: tuple[FeatureSpec, ...] = ()
    site_template: Literal["missile_operating_base", "random"] = "random"
    name: str = ""

    def __post_init__(self) -> None:
        if self.gsd <= 0 or not math.isfinite(self.gsd):
            raise InputError(f"gsd must be a positive number of metres, got {self.gsd}")
        w, h = self.size_px
        if w < 16 or h < 16 or w > 20000 or h > 20000:
            raise InputError(f"scene size {w}x{h} px is out of range 16..20000; check --size")
        if self.sites < 0:
            raise InputError(f"sites must be >= 0, got {self.sites}")
        if self.span_days < 0:
            raise InputError(
                f"span_days must be >= 0 (days from first to last date), got {self.span_days}"
            )
        unknown = [b for b in self.bands if b not in BAND_INFO]
        if unknown or not self.bands:
            raise InputError(
                f"unknown band(s) {unknown or '(none given)'}; choose from {sorted(BAND_INFO)}"
            )
        if len(set(self.bands)) != len(self.bands):
            raise InputError(f"bands repeat: {self.bands}")
        n = self.n_dates
        if n < 1:
            raise InputError("a scenario needs at least one date")
        if self.sun_angles is not None and len(self.sun_angles) != n:
            raise InputError(f"sun_angles has {len(self.sun_angles)} entries for {n} dates")
        if self.sun_angles is not None:
            for _az, el in self.sun_angles:
                if not 0.0 < el < 90.0:
                    raise InputError(f"sun elevation {el} must be within 0..90 degrees")
        if self.shadow_oversample < 2 or self.shadow_oversample > 8:
            raise InputError(f"shadow_oversample must be 2..8, got {self.shadow_oversample}")
        if self.center is not None:
            lon, lat = self.center
            if not (-180 <= lon <= 180 and -80 <= lat <= 84):
                raise InputError(f"center {self.center} must be (lon, lat) within UTM coverage")

    @property
    def n_dates(self) -> int:
        """How many acquisition dates."""
        return self.dates if isinstance(self.dates, int) else len(self.dates)

    @property
    def scenario_id(self) -> str:
        """Identifier used in item ids."""
        return self.name or f"scenario-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly record of the spec (written into truth.json)."""
        return {
            "seed": self.seed,
            "sites": self.sites,
            "dates": self.dates
            if isinstance(self.dates, int)
            else [d.isoformat() for d in self.dates],
            "start": self.start.isoformat(),
            "span_days": self.span_days,
            "center": list(self.center) if self.center else None,
            "size_px": list(self.size_px),
            "gsd": self.gsd,
            "bands": list(self.bands),
            "dem": Path(self.dem).name if self.dem else None,
            "terrain": self.terrain,
            "landcover": self.landcover,
            "clouds": self.clouds,
            "noise": self.noise,
            "psf_sigma_px": self.psf_sigma_px,
            "shadow_oversample": self.shadow_oversample,
            "sun_angles": [list(s) for s in self.sun_angles] if self.sun_angles else None,
            "site_template": self.site_template,
            "explicit_features": len(self.features),
        }


def acquisition_times(spec: ScenarioSpec, lon: float) -> list[datetime]:
    """UTC acquisition times: explicit ones, or ``n`` dates over the span at local solar time."""
    if not isinstance(spec.dates, int):
        return [d if d.tzinfo else d.replace(tzinfo=UTC) for d in spec.dates]
    n = spec.dates
    step = spec.span_days / max(n - 1, 1)
    out = []
    for i in range(n):
        day = spec.start + timedelta(days=round(i * step))
        hours = (spec.local_solar_time - lon / 15.0) % 24.0
        base = datetime(day.year, day.month, day.day, tzinfo=UTC)
        out.append(base + timedelta(seconds=round(hours * 3600.0)))
    return out


@dataclass(frozen=True)
class ScenarioResult:
    """What :func:`~sitewatch.scenario.make_scenario` wrote; paths are absolute."""

    outdir: Path
    catalog: Path
    items: tuple[Path, ...]
    truth_json: Path
    features_geojson: Path
    features_utm_geojson: Path
    change_masks: tuple[Path, ...]
    dem: Path
    epsg: int
    dates: tuple[datetime, ...]
    truth: dict[str, Any] = field(repr=False)
    seconds: float = 0.0


def demo_spec(seed: int = 7) -> ScenarioSpec:
    """The demo: a mountain valley holding a missile operating base whose spoil berms grow and
    where a new tunnel portal appears (and a shelter is added), six dates over two years.

    768 x 768 px at 0.5 m (384 m square), four bands; generates in a few seconds.
    """
    return ScenarioSpec(
        seed=seed,
        sites=1,
        dates=6,
        size_px=(768, 768),
        gsd=0.5,
        site_template="missile_operating_base",
        name="demo-valley",
    )
