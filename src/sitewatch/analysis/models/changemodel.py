"""A trained change model: the network, its band list and input normalisation; tiled inference;
save/load as a torch ``state_dict`` plus a small JSON file (never pickled objects).

This module imports torch at import time; use it through :mod:`sitewatch.analysis.models`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as nnf

from ...errors import InputError
from ._network import SiamDiffUNet

__all__ = ["FORMAT", "ChangeModel", "ModelMeta", "meta_path", "normalise_image"]

logger = logging.getLogger(__name__)

FORMAT = "sitewatch-change-model"
VERSION = 1


@dataclass(frozen=True)
class ModelMeta:
    """What the weights need to be used: bands, normalisation, architecture, threshold."""

    bands: tuple[str, ...]
    widths: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.1
    normalisation: str = "per_image_zscore"
    clip: float = 6.0
    threshold: float = 0.5
    tile: int = 256
    overlap: int = 64
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d.update(format=FORMAT, version=VERSION, architecture="fc_siam_diff")
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> ModelMeta:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError(f"{where}: not a sitewatch change model description")
        if d.get("version") != VERSION:
            raise InputError(
                f"{where}: model format version {d.get('version')} is not supported (this "
                f"sitewatch reads version {VERSION}); retrain with `sitewatch change train-oscd`"
            )
        try:
            return cls(
                bands=tuple(str(b) for b in d["bands"]),
                widths=tuple(int(w) for w in d["widths"]),
                dropout=float(d["dropout"]),
                normalisation=str(d["normalisation"]),
                clip=float(d["clip"]),
                threshold=float(d["threshold"]),
                tile=int(d["tile"]),
                overlap=int(d["overlap"]),
                training=dict(d.get("training", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: incomplete model description ({exc!r})") from exc


def meta_path(model_path: str | Path) -> Path:
    """The JSON description that goes with a weights file: ``MODEL.json`` beside ``MODEL``."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def normalise_image(image: NDArray[Any], clip: float = 6.0) -> NDArray[np.float32]:
    """Per-image, per-band z-score over the finite pixels, clipped to +-``clip``; NaN becomes 0.

    Normalising each image on its own absorbs most of the radiometric difference between dates.
    """
    x = np.asarray(image, dtype=np.float32)
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        band = x[i]
        ok = np.isfinite(band)
        if not ok.any():
            continue
        vals = band[ok].astype(np.float64)
        sd = float(vals.std())
        z = (band - float(vals.mean())) / (sd if sd > 0 else 1.0)
        out[i] = np.where(ok, np.clip(z, -clip, clip), 0.0)
    return out


def _band_index(have: Sequence[str], want: Sequence[str]) -> list[int]:
    """Positions of ``want`` in ``have``: exact (case-insensitive) names, else the same role."""
    from ..change import _role_of

    low = [h.lower() for h in have]
    roles = [_role_of(h) for h in have]
    idx, missing = [], []
    for w in want:
        if w.lower() in low:
            idx.append(low.index(w.lower()))
        elif (r := _role_of(w)) is not None and r in roles:
            idx.append(roles.index(r))
        else:
            missing.append(w)
    if missing:
        raise InputError(
            f"the change model was trained on bands {', '.join(want)}; the images lack "
            f"{', '.join(missing)} (they have {', '.join(have)}). Give images with those bands, "
            "or use an unsupervised --method"
        )
    return idx


def _taper(n: int, margin: int) -> NDArray[np.float32]:
    """Blending weights along one tile axis: a ramp over ``margin`` pixels at both ends."""
    w = np.ones(n, dtype=np.float32)
    if margin > 0 and n > 2 * margin:
        ramp = (np.arange(margin, dtype=np.float32) + 0.5) / margin
        w[:margin] = ramp
        w[-margin:] = ramp[::-1]
    return w


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


class ChangeModel:
    """A Siamese U-Net change model with its description; ``predict`` takes (band, y, x) arrays."""

    def __init__(self, meta: ModelMeta, net: SiamDiffUNet | None = None) -> None:
        self.meta = meta
        self.net = (
            net if net is not None else SiamDiffUNet(len(meta.bands), meta.widths, meta.dropout)
        )
        if self.net.in_channels != len(meta.bands):
            raise InputError(
                f"network has {self.net.in_channels} input bands but the description lists "
                f"{len(meta.bands)}"
            )

    # --- inference ----------------------------------------------------------------------------

    def prepare(self, image: NDArray[Any], bands: Sequence[str]) -> NDArray[np.float32]:
        """The model's bands of ``image``, normalised."""
        if image.ndim != 3:
            raise InputError(f"expected a (band, y, x) image, got shape {image.shape}")
        if len(bands) != image.shape[0]:
            raise InputError(f"{len(bands)} band names for {image.shape[0]} bands")
        return normalise_image(image[_band_index(bands, self.meta.bands)], self.meta.clip)

    def logits(self, a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
        """Per-pixel change logits of two prepared images, tile by tile with blended overlaps."""
        _, h, w = a.shape
        tile, m = self.meta.tile, self.net.multiple
        overlap = min(self.meta.overlap, tile // 2)
        th, tw = min(tile, h), min(tile, w)
        acc = np.zeros((h, w), dtype=np.float32)
        wsum = np.zeros((h, w), dtype=np.float32)
        self.net.eval()
        with torch.inference_mode():
            for y0 in _starts(h, th, th - overlap):
                for x0 in _starts(w, tw, tw - overlap):
                    ta = torch.from_numpy(
                        np.ascontiguousarray(a[None, :, y0 : y0 + th, x0 : x0 + tw])
                    )
                    tb = torch.from_numpy(
                        np.ascontiguousarray(b[None, :, y0 : y0 + th, x0 : x0 + tw])
                    )
                    py, px = -th % m, -tw % m
                    if py or px:  # pad to a multiple of the network's stride
                        ta = nnf.pad(ta, (0, px, 0, py), mode="replicate")
                        tb = nnf.pad(tb, (0, px, 0, py), mode="replicate")
                    out = self.net(ta, tb)[0, 0, :th, :tw].numpy()
                    wt = np.outer(
                        _taper(th, overlap // 2 if h > th else 0),
                        _taper(tw, overlap // 2 if w > tw else 0),
                    )
                    acc[y0 : y0 + th, x0 : x0 + tw] += out * wt
                    wsum[y0 : y0 + th, x0 : x0 + tw] += wt
        return acc / wsum

    def probability(
        self, before: NDArray[Any], after: NDArray[Any], bands: Sequence[str]
    ) -> NDArray[np.float32]:
        """Change probability per pixel (NaN where either image has no data)."""
        if before.shape != after.shape:
            raise InputError(f"BEFORE {before.shape} and AFTER {after.shape} differ in shape")
        valid = np.isfinite(before).all(axis=0) & np.isfinite(after).all(axis=0)
        if not valid.any():
            raise InputError("the two images have no pixel with data in both: nothing to compare")
        a, b = self.prepare(before, bands), self.prepare(after, bands)
        logit = self.logits(a, b)
        prob = (1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60)))).astype(np.float32)
        prob[~valid] = np.nan
        return prob

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the weights (``state_dict``) to ``path`` and the description to ``path.json``."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), p)
        mp = meta_path(p)
        mp.write_text(self.meta.to_json() + "\n")
        return mp

    @classmethod
    def load(cls, path: str | Path) -> ChangeModel:
        """Read a model written by :meth:`save` (weights loaded with ``weights_only=True``)."""
        p = Path(path)
        mp = meta_path(p)
        if not p.is_file():
            raise InputError(
                f"{p}: no such model file; train one with `sitewatch change train-oscd`"
            )
        if not mp.is_file():
            raise InputError(
                f"{p}: its description {mp.name} is missing beside it (it holds the bands and "
                "normalisation); copy it along with the weights"
            )
        meta = ModelMeta.from_json(mp.read_text(), str(mp))
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt or foreign files
            raise InputError(f"{p}: not a readable weights file ({exc})") from exc
        model = cls(meta)
        try:
            model.net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise InputError(
                f"{p}: weights do not match the description in {mp.name} ({exc})"
            ) from exc
        model.net.eval()
        return model
