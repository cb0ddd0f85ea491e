"""Co-registration: the sub-pixel shift between two chips by phase correlation, and its correction.

:func:`estimate_shift` reports how far the ``moving`` chip must move (rows, columns; metres east and
north) to line up with the ``reference``; :func:`apply_shift` moves it, by resampling the pixels
(``scipy.ndimage.shift``) or by changing only its geotransform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage
from skimage import registration

from ..errors import AnalysisError
from ._bands import common_name
from .chips import Chip

__all__ = [
    "MAX_SHIFT_PX",
    "MIN_CORRELATION",
    "Shift",
    "apply_shift",
    "estimate_shift",
    "layer_shift",
    "register_stack",
    "shift_layers",
]

MAX_SHIFT_PX = 3.0
"""The longest shift :func:`register_stack` accepts: residual misregistration of orthorectified
imagery is a pixel or two (OSCD's Sentinel-2 tiles: up to 1.4 px); a longer measured shift is
wrong georeferencing, or a measurement locked onto the change itself (7 of 11 LEVIR-CD pairs,
256 px of new housing, gave 4-55 px)."""

MIN_CORRELATION = 0.2
"""The correlation the measured band must reach once moved for :func:`register_stack` to accept
a shift: below it the two images share too little for a registration to mean anything
(unrelated scenes give about 0; the OSCD cities 0.48-0.93, the SZTAKI and LEVIR-CD pairs
0.1-0.6)."""


@dataclass(frozen=True)
class Shift:
    """How to move ``moving`` onto ``reference``: rows (down +) and columns (right +) in pixels."""

    dy: float
    dx: float
    pixel_size: float
    error: float
    band: str

    @property
    def east_m(self) -> float:
        """The shift towards the east, in metres (grid units)."""
        return self.dx * self.pixel_size

    @property
    def north_m(self) -> float:
        """The shift towards the north, in metres (grid units)."""
        return -self.dy * self.pixel_size

    @property
    def magnitude_px(self) -> float:
        """Length of the shift in pixels."""
        return math.hypot(self.dx, self.dy)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready report."""
        return {
            "dy_px": self.dy,
            "dx_px": self.dx,
            "east_m": self.east_m,
            "north_m": self.north_m,
            "magnitude_px": self.magnitude_px,
            "error": self.error,
            "band": self.band,
        }


def _standardised(layer: NDArray[np.floating], ok: NDArray[np.bool_]) -> NDArray[np.float64]:
    fill = float(layer[ok].mean())
    filled = np.where(ok, layer, fill)
    std = filled.std()
    return np.asarray((filled - fill) / (std if std > 0 else 1.0), dtype=np.float64)


def _layer(chip: Chip, band: str | None) -> tuple[NDArray[np.float64], str]:
    if band is None:
        band = next(
            (b for b in ("nir", "red", "green", "pan", "gray") if b in chip.bands), chip.bands[0]
        )
    layer = chip.band(band).astype(np.float64)
    ok = chip.valid & np.isfinite(layer)
    if chip.cloud is not None:
        ok &= ~chip.cloud
    if ok.sum() < 0.5 * ok.size:
        raise AnalysisError(
            f"chip of {chip.scene.id!r} has only {ok.mean():.0%} clear valid pixels; "
            "co-registration needs most of the chip (choose a clearer date or a larger chip)"
        )
    return np.where(ok, layer, np.nan), band


def layer_shift(
    reference: NDArray[np.floating], moving: NDArray[np.floating], *, upsample: int = 20
) -> tuple[float, float, float]:
    """(dy, dx, error): how far the 2-D layer ``moving`` must move (rows down, columns right) to
    line up with ``reference`` on the same grid; NaN marks pixels without data.

    Phase correlation (``skimage.registration.phase_cross_correlation``, 1/``upsample`` pixel
    precision) of the standardised, Hann-windowed layers.
    """
    if reference.shape != moving.shape or reference.ndim != 2:
        raise AnalysisError(
            f"co-registration needs two layers of one grid, got {reference.shape} and "
            f"{moving.shape}"
        )
    oks = [np.isfinite(reference), np.isfinite(moving)]
    if min(int(ok.sum()) for ok in oks) < 0.5 * reference.size:
        raise AnalysisError(
            "co-registration needs data in most of both images (at least half of the pixels); "
            "choose clearer dates or a larger area"
        )
    ref, mov = (_standardised(x, ok) for x, ok in zip((reference, moving), oks, strict=True))
    window = np.outer(np.hanning(ref.shape[0]), np.hanning(ref.shape[1]))
    register: Any = registration.phase_cross_correlation
    shift, error, _ = register(
        ref * window, mov * window, upsample_factor=upsample, normalization=None
    )
    return float(shift[0]), float(shift[1]), float(error)


def _measured_layers(
    reference: NDArray[Any],
    moving: NDArray[Any],
    bands: Sequence[str],
    nodata: tuple[float | None, float | None],
    window: int,
) -> tuple[int, NDArray[np.float64], NDArray[np.float64]]:
    """The band registration is measured on (NIR, the sharpest over land; else the first) and its
    central ``window`` pixels in both images, float64 with NaN for no data."""
    k = next((i for i, b in enumerate(bands) if common_name(b) in ("nir", "nir08")), 0)
    h, w = reference.shape[1:]
    rows = slice(max(0, (h - window) // 2), (h + window) // 2)
    cols = slice(max(0, (w - window) // 2), (w + window) // 2)
    layers = []
    for image, missing in zip((reference, moving), nodata, strict=True):
        layer = np.array(image[k, rows, cols], dtype=np.float64)
        if missing is not None:
            layer[layer == missing] = np.nan
        layers.append(layer)
    return k, layers[0], layers[1]


def _correlation(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Pearson correlation of two layers over the pixels finite in both (NaN if undefined)."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return float("nan")
    x, y = a[ok].astype(np.float64), b[ok].astype(np.float64)
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return float("nan")
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def register_stack(
    reference: NDArray[Any],
    moving: NDArray[Any],
    bands: Sequence[str],
    *,
    nodata: tuple[float | None, float | None] = (None, None),
    max_shift_px: float = MAX_SHIFT_PX,
    min_correlation: float = MIN_CORRELATION,
    min_shift_px: float = 0.0,
    apply: bool = True,
    window: int = 2048,
) -> tuple[NDArray[np.float32] | None, dict[str, Any]]:
    """Measure the shift of (band, y, x) ``moving`` against ``reference`` on one grid
    (:func:`layer_shift` on the NIR band, the sharpest over land, else the first, over the
    central ``window`` pixels; NaN, and each image's ``nodata`` value, mark pixels without data)
    and, with ``apply``, move it (:func:`shift_layers`) if the shift is plausible.

    A shift is accepted when it is at most ``max_shift_px`` long and makes the images more alike:
    the measured band's correlation over the measured window rises, to at least
    ``min_correlation``. Where most of a scene changed, phase correlation can lock onto the
    change and return tens of pixels; moving the image by that would be a silent wrong answer.
    Only the measured window is moved to check it: the whole stack is moved once, and only when
    the shift is accepted and ``apply`` asks for it (a Sentinel-2 tile is 1.9 GB a copy).

    Returns the moved stack (float32; NaN where ``nodata`` was or where pixels came in from
    outside), or None when the shift is rejected, is at most ``min_shift_px`` (not worth moving;
    not a rejection) or ``apply`` is off, and a JSON-ready report: ``measured``, ``band``,
    ``dy_px``/``dx_px`` (rows down, columns right), ``magnitude_px``,
    ``correlation_before``/``correlation_after`` (unmoved, moved), ``rejected`` and, when
    rejected, ``reason``. Raises :class:`AnalysisError` when the shift cannot be measured.
    """
    k, ref, mov = _measured_layers(reference, moving, bands, nodata, window)
    dy, dx, _ = layer_shift(ref, mov)
    size = math.hypot(dx, dy)
    report: dict[str, Any] = {
        "measured": True, "band": bands[k], "dy_px": round(dy, 3), "dx_px": round(dx, 3),
        "magnitude_px": round(size, 3), "correlation_before": None, "correlation_after": None,
        "rejected": False,
    }  # fmt: skip
    if size > max_shift_px:
        report.update(
            rejected=True,
            reason=f"the shift is beyond the {max_shift_px:g} px co-registration corrects: check "
            "both images' georeferencing, or the scene changed too much to measure it",
        )
        return None, report
    if size <= min_shift_px:
        return None, report
    r0 = _correlation(ref, mov)
    r1 = _correlation(ref, shift_layers(mov[None], dy, dx)[0])
    report.update(correlation_before=round(r0, 4), correlation_after=round(r1, 4))
    if not (r1 > r0 and r1 >= min_correlation):  # NaN too
        report.update(
            rejected=True,
            reason=f"moving by it does not make the images alike (correlation {r0:.3f} -> "
            f"{r1:.3f}, at least {min_correlation:g} needed): the scene probably changed too "
            "much to measure its registration",
        )
        return None, report
    return (shift_layers(moving, dy, dx, nodata=nodata[1]) if apply else None), report


def estimate_shift(
    reference: Chip, moving: Chip, *, band: str | None = None, upsample: int = 20
) -> Shift:
    """The sub-pixel shift that registers ``moving`` onto ``reference`` (same grid required).

    :func:`layer_shift` on one band (default: nir, red, green, or the first).
    """
    if reference.data.shape[1:] != moving.data.shape[1:] or reference.transform != moving.transform:
        raise AnalysisError(
            f"chips of {reference.scene.id!r} and {moving.scene.id!r} are on different grids; "
            "cut both with the same ChipGrid"
        )
    ref, used = _layer(reference, band)
    mov, _ = _layer(moving, used)
    dy, dx, error = layer_shift(ref, mov, upsample=upsample)
    return Shift(dy=dy, dx=dx, pixel_size=float(abs(reference.transform.a)), error=error, band=used)


def shift_layers(
    data: NDArray[Any], dy: float, dx: float, *, nodata: float | None = None
) -> NDArray[np.float32]:
    """(band, y, x) ``data`` moved by (dy, dx) pixels on its grid, bilinear, band by band (memory
    of one band at a time); pixels shifted in from outside, and neighbours of NaN or ``nodata``
    pixels, become NaN."""
    out = np.empty(data.shape, dtype=np.float32)
    for i in range(data.shape[0]):
        band = np.asarray(data[i], dtype=np.float32)
        if nodata is not None:
            band = np.where(data[i] == nodata, np.float32(np.nan), band)
        out[i] = ndimage.shift(band, (dy, dx), order=1, mode="constant", cval=np.nan)
    return out


def apply_shift(
    chip: Chip, shift: Shift, *, method: Literal["resample", "transform"] = "resample"
) -> Chip:
    """Move ``chip`` by ``shift``.

    ``resample`` shifts the pixels on the same grid (bilinear, ``scipy.ndimage.shift``; pixels
    shifted in from outside become invalid); ``transform`` keeps the pixels and moves the
    geotransform instead (the chip then lies on a shifted grid).
    """
    if method == "transform":
        t = chip.transform
        moved = Affine(t.a, t.b, t.c - shift.dx * t.a, t.d, t.e, t.f - shift.dy * t.e)
        return chip.replace(transform=moved)
    if method != "resample":
        raise AnalysisError(f"unknown shift method {method!r}; use 'resample' or 'transform'")
    offset = (0.0, shift.dy, shift.dx)
    data = shift_layers(chip.data, shift.dy, shift.dx)
    valid = (
        ndimage.shift(chip.valid.astype(np.float32), offset[1:], order=0, mode="constant", cval=0.0)
        > 0.5
    )
    valid &= np.isfinite(data).all(axis=0)
    cloud = None
    if chip.cloud is not None:
        cloud = (
            ndimage.shift(chip.cloud.astype(np.float32), offset[1:], order=0, mode="constant") > 0.5
        )
    if np.issubdtype(chip.data.dtype, np.integer):
        fill = chip.nodata if chip.nodata is not None else 0
        out = np.where(np.isfinite(data), np.rint(data), fill).astype(chip.data.dtype)
    else:
        out = data.astype(chip.data.dtype)
    return chip.replace(data=out, valid=valid, cloud=cloud)
