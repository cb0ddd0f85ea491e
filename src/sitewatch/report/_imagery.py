"""Plain image values for reports: a chip as (band, y, x) pixels + affine transform + CRS + credits.

Report code takes :class:`ImageChip` so it does not depend on how the pixels were obtained; use
:func:`as_image_chip` to turn an imagery ``Chip``, an archived chip or a GeoTIFF path into one.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.errors import RasterioError

from ..errors import ImageryError, InputError, gdal_text
from ..imagery._bands import display_composite
from ..imagery.scene import scene_credit

__all__ = [
    "NO_IMAGE_FILL",
    "ImageChip",
    "Stretch",
    "as_image_chip",
    "has_gaps",
    "percentile_stretch",
    "to_rgb",
]

log = logging.getLogger(__name__)

Stretch = NDArray[np.float64]
"""Per displayed channel (1 or 3) the (low, high) values mapped to black and white."""


@dataclass(frozen=True, eq=False)
class ImageChip:
    """Pixels of one acquisition on a north-up grid, with what a caption needs.

    ``data`` is (band, y, x); ``transform`` maps pixel (col, row) to ``crs`` coordinates (top-left
    origin, no rotation); ``source`` is the provider credited as "Image © source".
    """

    data: NDArray[Any]
    transform: Affine
    crs: str
    acquired: datetime | date | None = None
    sensor: str = ""
    source: str = ""
    bands: tuple[str, ...] = ()
    valid: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim == 2:
            data = data[np.newaxis]
        if data.ndim != 3 or data.shape[1] == 0 or data.shape[2] == 0:
            raise InputError(
                f"an image chip needs (band, y, x) pixels, got an array of shape {data.shape}"
            )
        object.__setattr__(self, "data", data)
        t = self.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise InputError(
                f"report figures need a north-up grid (transform without rotation, origin at "
                f"the top-left), got {tuple(t)[:6]}; cut the chip on a site-local UTM grid"
            )
        if self.valid is not None and self.valid.shape != data.shape[1:]:
            raise InputError(
                f"valid mask shape {self.valid.shape} does not match the pixels {data.shape[1:]}"
            )

    @property
    def height(self) -> int:
        """Rows."""
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        """Columns."""
        return int(self.data.shape[2])

    @property
    def resolution(self) -> float:
        """Pixel size in CRS units."""
        return float(self.transform.a)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) in CRS units: matplotlib's ``imshow`` extent."""
        t = self.transform
        return (t.c, t.c + t.a * self.width, t.f + t.e * self.height, t.f)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        left, right, bottom, top = self.extent
        return (left, bottom, right, top)

    @property
    def date_text(self) -> str:
        """The acquisition date as YYYY-MM-DD (empty when unknown)."""
        if self.acquired is None:
            return ""
        return (
            self.acquired.date().isoformat()
            if isinstance(self.acquired, datetime)
            else self.acquired.isoformat()
        )

    def display_bands(self) -> list[int]:
        """Indices of the bands shown (see :func:`~sitewatch.imagery._bands.display_composite`):
        red/green/blue by name, else colour infrared, else short-wave infrared, else the first
        three, else one."""
        return display_composite(self.bands, self.data.shape[0])[0]

    def composite_text(self) -> str:
        """What the colours are, for a caption ("" for true colour)."""
        return display_composite(self.bands, self.data.shape[0])[1]


def _valid(chip: ImageChip, band_idx: Sequence[int]) -> NDArray[np.bool_]:
    sel = chip.data[list(band_idx)].astype(np.float64)
    ok: NDArray[np.bool_] = np.all(np.isfinite(sel), axis=0)
    if chip.valid is not None:
        ok &= chip.valid
    return ok


def percentile_stretch(
    chips: Sequence[ImageChip], percentiles: tuple[float, float] = (2.0, 98.0)
) -> Stretch:
    """One stretch for all ``chips`` (matched contrast): percentiles of their pooled valid pixels."""
    if not chips:
        raise InputError("a stretch needs at least one image chip")
    lo_p, hi_p = percentiles
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise InputError(
            f"stretch percentiles must satisfy 0 <= low < high <= 100, got {percentiles}"
        )
    n = len(chips[0].display_bands())
    out = np.zeros((n, 2), dtype=np.float64)
    for ch in range(n):
        pooled = []
        for chip in chips:
            idx = chip.display_bands()
            if len(idx) != n:
                raise InputError(
                    "chips shown together need the same number of display bands "
                    f"({n} and {len(idx)}); give them the same bands"
                )
            ok = _valid(chip, idx)
            values = chip.data[idx[ch]][ok].astype(np.float64)
            if values.size > 200_000:  # a regular subsample keeps large chips fast
                values = values[:: values.size // 200_000 + 1]
            pooled.append(values)
        allv = np.concatenate(pooled) if pooled else np.empty(0)
        if allv.size == 0:
            out[ch] = (0.0, 1.0)
            continue
        lo, hi = np.percentile(allv, [lo_p, hi_p])
        # a flat image shows as mid grey rather than black
        out[ch] = (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)
    return out


NO_IMAGE_FILL = 0.85
"""The light grey of pixels without an image (outside the scene, nodata, masked) in figures and
time-lapses: black would read as shadow, which the shadow tools measure."""


def has_gaps(chip: ImageChip) -> bool:
    """Whether some displayed pixel of ``chip`` is invalid (outside the scene, nodata or masked)."""
    return not bool(_valid(chip, chip.display_bands()).all())


def to_rgb(
    chip: ImageChip, stretch: Stretch | None = None, *, fill: float = 0.0
) -> NDArray[np.float64]:
    """(y, x, 3) floats in 0..1 after the stretch; invalid pixels are ``fill`` (black)."""
    idx = chip.display_bands()
    st = percentile_stretch([chip]) if stretch is None else np.asarray(stretch, dtype=np.float64)
    if st.shape != (len(idx), 2):
        raise InputError(f"a stretch of shape {st.shape} does not fit {len(idx)} display band(s)")
    ok = _valid(chip, idx)
    planes = []
    for ch, b in enumerate(idx):
        lo, hi = st[ch]
        plane = (chip.data[b].astype(np.float64) - lo) / (hi - lo)
        planes.append(np.clip(np.nan_to_num(plane, nan=0.0), 0.0, 1.0))
    rgb = np.stack(planes * 3 if len(planes) == 1 else planes, axis=-1)
    rgb[~ok] = fill
    return rgb


def _read_tif(path: Path, **meta: Any) -> ImageChip:
    try:
        with rasterio.open(path) as ds:
            data = ds.read()
            tags = ds.tags()
            bands = tuple(d or f"b{i}" for i, d in enumerate(ds.descriptions, start=1))
            mask = ds.dataset_mask() > 0 if ds.nodata is not None else None
            crs = ds.crs.to_string() if ds.crs else None
            transform = ds.transform
    except (RasterioError, OSError) as exc:
        raise ImageryError(f"cannot read the image {path}: {gdal_text(exc)}") from exc
    if crs is None:
        raise ImageryError(f"{path} has no CRS; reports need georeferenced chips")
    mask_path = path.with_name(path.stem + "_mask.tif")
    if mask is None and mask_path.is_file():
        with suppress(RasterioError, OSError), rasterio.open(mask_path) as ms:
            mask = ms.read(1) > 0
    acquired: Any = meta.pop("acquired", None)
    if acquired is None and tags.get("datetime"):
        with suppress(ValueError):
            acquired = datetime.fromisoformat(tags["datetime"].replace("Z", "+00:00"))
    return ImageChip(
        data=data,
        transform=transform,
        crs=crs,
        acquired=acquired,
        sensor=meta.pop("sensor", "") or tags.get("sensor", ""),
        source=meta.pop("source", ""),
        bands=tuple(meta.pop("bands", ()) or bands),
        valid=mask,
    )


def as_image_chip(obj: Any, *, source: str = "") -> ImageChip:
    """An :class:`ImageChip` from an ImageChip, an imagery ``Chip``, an ``ArchivedChip`` or a path."""
    if isinstance(obj, ImageChip):
        return obj
    if isinstance(obj, str | os.PathLike):
        return _read_tif(Path(obj), source=source)
    scene = getattr(obj, "scene", None)
    if scene is not None and hasattr(obj, "data"):  # sitewatch.imagery.Chip
        return ImageChip(
            data=obj.data,
            transform=obj.transform,
            crs=str(obj.crs),
            acquired=scene.datetime,
            sensor=scene.sensor,
            source=source or scene_credit(scene) or "",
            bands=tuple(obj.bands),
            valid=obj.valid,
        )
    if hasattr(obj, "path") and hasattr(obj, "datetime"):  # sitewatch.imagery.ArchivedChip
        return _read_tif(
            Path(obj.path),
            acquired=obj.datetime,
            sensor=getattr(obj, "sensor", ""),
            source=source or str(getattr(obj, "credit", "") or ""),
            bands=getattr(obj, "bands", ()),
        )
    raise InputError(
        f"cannot use a {type(obj).__name__} as an image chip; give an ImageChip, an imagery "
        "Chip, an ArchivedChip or the path of a GeoTIFF"
    )


def png_bytes(rgb: NDArray[Any], alpha: NDArray[np.bool_] | None = None) -> bytes:
    """PNG bytes of (y, x, 3) floats in 0..1 (or uint8), with an optional alpha mask."""
    from PIL import Image

    arr = rgb if rgb.dtype == np.uint8 else np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    if alpha is not None:
        arr = np.dstack([arr, np.where(alpha, 255, 0).astype(np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
