"""A quick look at one change detection: BEFORE and AFTER side by side with one contrast stretch
and the change outlined, as ``change detect --preview`` writes it (the brief's before/after
figure, made from the detection's own images and mask)."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray

from ..errors import InputError
from ._imagery import ImageChip
from .figures import before_after_figure, save_figure

__all__ = ["PREVIEW_PX", "write_change_preview"]

PREVIEW_PX = 1500
"""Longest side, in pixels, of the images in a preview: larger ones are read every n-th pixel
(the change mask is pooled, so that no changed pixel is lost)."""


def _pooled(mask: NDArray[np.bool_], step: int) -> NDArray[np.bool_]:
    """``mask`` on a grid ``step`` times coarser: a cell is changed when any pixel in it is."""
    if step == 1:
        return mask
    h, w = mask.shape
    hh, ww = math.ceil(h / step), math.ceil(w / step)
    padded = np.zeros((hh * step, ww * step), dtype=bool)
    padded[:h, :w] = mask
    return np.asarray(padded.reshape(hh, step, ww, step).any(axis=(1, 3)), dtype=bool)


def write_change_preview(
    path: str | Path,
    before: NDArray[Any],
    after: NDArray[Any],
    mask: NDArray[np.bool_],
    *,
    bands: tuple[str, ...],
    crs: str,
    transform: Affine,
    nodata: tuple[float | None, float | None] = (None, None),
    dates: tuple[date | datetime | None, date | datetime | None] = (None, None),
    caption: str = "",
) -> Path:
    """Write the before/after figure of a detection (PNG, SVG or PDF by ``path``'s suffix).

    ``before`` and ``after`` are (band, y, x) on one grid (``crs``, ``transform``); ``mask`` is
    the change mask on it. Red, green and blue are picked by the band names (B04/B03/B02 too).
    """
    if before.shape != after.shape or before.shape[1:] != mask.shape:
        raise InputError(
            f"a preview needs BEFORE, AFTER and the mask on one grid, got {before.shape}, "
            f"{after.shape} and {mask.shape}"
        )
    h, w = mask.shape
    step = max(1, math.ceil(max(h, w) / PREVIEW_PX))
    grid = transform * Affine.scale(step)
    chips = []
    for data, missing, when in zip((before, after), nodata, dates, strict=True):
        part = data[:, ::step, ::step]
        valid = np.all(np.isfinite(part), axis=0)
        if missing is not None:
            valid &= np.all(part != missing, axis=0)
        chips.append(
            ImageChip(data=part, transform=grid, crs=crs, acquired=when, bands=bands, valid=valid)
        )
    pooled = _pooled(mask, step)[: chips[1].height, : chips[1].width]
    note = (
        f"One pixel in {step} shown along each axis; the change mask pooled so that none is lost."
        if step > 1
        else ""
    )
    fig = before_after_figure(
        chips[0],
        chips[1],
        title="Change detected",
        change_mask=pooled,
        caption=" ".join(t for t in (caption, note) if t),
    )
    return save_figure(fig, path)
