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
from ...files import atomic_path, write_text
from . import NORMALISATIONS, PRIORS
from ._network import SiamDiffUNet

__all__ = [
    "FORMAT",
    "INDEX_SCALE",
    "INPUT_INDICES",
    "NORMALISATIONS",
    "PRIORS",
    "ChangeModel",
    "ModelMeta",
    "index_channels",
    "input_channels",
    "meta_path",
    "model_inputs",
    "normalise_image",
    "pair_prior",
    "resolve_device",
]

logger = logging.getLogger(__name__)

FORMAT = "sitewatch-change-model"
VERSION = 3
READS = (1, 2, 3)
"""Version 1 descriptions (no ``tta``) are read as ``tta=False``, versions 1-2 (no ``prior``) as
``prior="none"``."""

INPUT_INDICES = ("ndvi", "ndbi", "mndwi", "bsi")
"""The spectral indices of ``zscore_indices`` inputs, in channel order: vegetation, built-up,
water and bare soil, the land covers whose swaps make up most real change and most seasonal
false alarms. Each is a ratio of bands, so a gain common to the bands of one date (sun,
atmosphere, calibration) cancels in it, and it keeps the absolute land cover that the per-image
z-score hides."""

INDEX_SCALE = 3.0
"""The indices (-1 to 1) are multiplied by this, so that the spread between land covers is about
that of the z-scores."""


@dataclass(frozen=True)
class ModelMeta:
    """What the weights need to be used: bands, normalisation, architecture, threshold."""

    bands: tuple[str, ...]
    widths: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.1
    normalisation: str = "zscore_indices"
    clip: float = 6.0
    threshold: float = 0.5
    tile: int = 256
    overlap: int = 64
    tta: bool = False
    """Average the logits over the 8 flips and rotations of each tile (8 times the inference)."""
    prior: str = "none"
    """Pair channel, one of :data:`PRIORS`."""
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
        if d.get("version") not in READS:
            raise InputError(
                f"{where}: model format version {d.get('version')} is not supported (this "
                f"sitewatch reads versions {', '.join(map(str, READS))}); retrain with "
                "`sitewatch change train-oscd`"
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
                tta=bool(d.get("tta", False)),
                prior=str(d.get("prior", "none")),
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


def _log_reflectance(image: NDArray[Any], clip: float) -> NDArray[np.float32]:
    """``ln(reflectance / 0.1)`` per band, clipped to +-``clip``; NaN becomes 0.

    Values are read as Sentinel-2 digital numbers (reflectance x 10000, as in L1C/L2A products);
    an image whose 99th percentile is at most 2 is taken to hold reflectance fractions instead.
    """
    x = np.asarray(image, dtype=np.float32)
    ok = np.isfinite(x)
    if ok.any() and float(np.percentile(x[ok], 99)) <= 2.0:
        x = x * np.float32(10000.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lg = np.log(np.maximum(x, np.float32(1.0)) / np.float32(1000.0))
    return np.where(ok, np.clip(lg, -clip, clip), np.float32(0.0)).astype(np.float32)


def index_channels(bands: Sequence[str]) -> tuple[str, ...]:
    """The :data:`INPUT_INDICES` that bands named ``bands`` allow (matched by name or role, as
    the change methods match them: B04 or red, B08 or nir, B11 or swir1...)."""
    from ..change import _INDEX_ROLES, _role_of

    roles = {_role_of(b) for b in bands}
    return tuple(n for n in INPUT_INDICES if roles.issuperset(_INDEX_ROLES[n]))


def input_channels(n_bands: int, normalisation: str, bands: Sequence[str] = ()) -> int:
    """The network's input channels for ``n_bands`` bands (named ``bands``, which
    ``zscore_indices`` needs) under ``normalisation``."""
    if normalisation == "per_image_zscore":
        return n_bands
    if normalisation == "zscore_log":
        return 2 * n_bands
    if normalisation == "zscore_indices":
        if len(bands) != n_bands:
            raise InputError(
                f"the zscore_indices inputs need the names of the {n_bands} bands "
                f"(got {len(bands)})"
            )
        return n_bands + len(index_channels(bands))
    raise InputError(
        f"unknown input normalisation {normalisation!r} (known: {', '.join(NORMALISATIONS)})"
    )


def _indices(image: NDArray[Any], bands: Sequence[str]) -> NDArray[np.float32]:
    """The :func:`index_channels` of ``image`` times :data:`INDEX_SCALE`; 0 where undefined."""
    from ..change import _index, _index_positions

    x = np.asarray(image, dtype=np.float32)
    names = tuple(bands)
    indices = index_channels(names)
    out = np.zeros((len(indices), *x.shape[1:]), dtype=np.float32)
    with np.errstate(invalid="ignore"):
        for i, name in enumerate(indices):
            v = np.clip(_index(x, _index_positions(names, name), name), -1.0, 1.0)
            out[i] = np.nan_to_num(v, nan=0.0) * np.float32(INDEX_SCALE)
    return out


def model_inputs(
    image: NDArray[Any], normalisation: str, clip: float, bands: Sequence[str] = ()
) -> NDArray[np.float32]:
    """The network's input channels of one (band, y, x) image, whose bands are named ``bands``
    (needed by ``zscore_indices``); see :data:`NORMALISATIONS`."""
    input_channels(image.shape[0], normalisation, bands)  # validates the name and the bands
    z = normalise_image(image, clip)
    if normalisation == "per_image_zscore":
        return z
    if normalisation == "zscore_indices":
        return np.concatenate([z, _indices(image, bands)], axis=0)
    return np.concatenate([z, _log_reflectance(image, clip)], axis=0)


def pair_prior(
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    valid: NDArray[np.bool_],
    prior: str,
    n_bands: int,
) -> NDArray[np.float32] | None:
    """The pair channels for prepared inputs ``a`` and ``b`` (their first ``n_bands`` channels are
    the per-image z-scores), or None for ``prior="none"``.

    ``cva``: change vector analysis as the unsupervised detector does it (z-scored bands smoothed
    with a Gaussian of sigma 1 px, Euclidean norm of the difference), expressed as a robust z-score
    over the image's valid pixels ``(d - median) / (1.4826 MAD)`` divided by 5, so that 1 is the
    unsupervised method's default threshold; clipped to [-1, 4] and 0 where there is no data. The
    scale comes from the whole image, which the network's crops and tiles never see.
    """
    if prior == "none":
        return None
    if prior != "cva":
        raise InputError(f"unknown prior {prior!r} (known: {', '.join(PRIORS)})")
    from scipy import ndimage as ndi

    sq = np.zeros(a.shape[1:], dtype=np.float64)
    for i in range(n_bands):
        d = ndi.gaussian_filter(b[i].astype(np.float64) - a[i], 1.0, mode="nearest")
        sq += d * d
    dist = np.sqrt(sq)
    out = np.zeros(a.shape[1:], dtype=np.float32)
    if valid.any():
        vals = dist[valid]
        med = float(np.median(vals))
        mad = 1.4826 * float(np.median(np.abs(vals - med)))
        z = (dist - med) / (5.0 * (mad if mad > 0 else 1.0))
        out = np.where(valid, np.clip(z, -1.0, 4.0), 0.0).astype(np.float32)
    return out[None]


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device from a name, with a clear error for an unknown or absent one."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from exc
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device {device!r} asked for, but this torch build sees no CUDA GPU; "
                "use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA GPU(s) are visible"
            )
    return dev


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
        channels = input_channels(len(meta.bands), meta.normalisation, meta.bands)
        if meta.prior not in PRIORS:
            raise InputError(f"unknown prior {meta.prior!r} (known: {', '.join(PRIORS)})")
        pair = 0 if meta.prior == "none" else 1
        self.net = (
            net
            if net is not None
            else SiamDiffUNet(channels, meta.widths, meta.dropout, pair_channels=pair)
        )
        if self.net.in_channels != channels or self.net.pair_channels != pair:
            raise InputError(
                f"network has {self.net.in_channels} input and {self.net.pair_channels} pair "
                f"channel(s) but the description's {len(meta.bands)} bands under "
                f"{meta.normalisation!r} and prior {meta.prior!r} give {channels} and {pair}"
            )

    # --- inference ----------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the network's weights are (inference runs there)."""
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> ChangeModel:
        """Move the network to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``...); returns self."""
        self.net.to(resolve_device(device))
        return self

    def prepare(self, image: NDArray[Any], bands: Sequence[str]) -> NDArray[np.float32]:
        """The network inputs of ``image``: the model's bands, normalised."""
        if image.ndim != 3:
            raise InputError(f"expected a (band, y, x) image, got shape {image.shape}")
        if len(bands) != image.shape[0]:
            raise InputError(f"{len(bands)} band names for {image.shape[0]} bands")
        return model_inputs(
            image[_band_index(bands, self.meta.bands)],
            self.meta.normalisation,
            self.meta.clip,
            self.meta.bands,
        )

    def logits(
        self,
        a: NDArray[np.float32],
        b: NDArray[np.float32],
        pair: NDArray[np.float32] | None = None,
    ) -> NDArray[np.float32]:
        """Per-pixel change logits of two prepared images (and their pair channels, see
        :func:`pair_prior`), tile by tile with blended overlaps."""
        _, h, w = a.shape
        tile, m = self.meta.tile, self.net.multiple
        overlap = min(self.meta.overlap, tile // 2)
        th, tw = min(tile, h), min(tile, w)
        acc = np.zeros((h, w), dtype=np.float32)
        wsum = np.zeros((h, w), dtype=np.float32)
        self.net.eval()
        dev = self.device
        with torch.inference_mode():
            for y0 in _starts(h, th, th - overlap):
                for x0 in _starts(w, tw, tw - overlap):
                    ta = torch.from_numpy(
                        np.ascontiguousarray(a[None, :, y0 : y0 + th, x0 : x0 + tw])
                    ).to(dev)
                    tb = torch.from_numpy(
                        np.ascontiguousarray(b[None, :, y0 : y0 + th, x0 : x0 + tw])
                    ).to(dev)
                    tp = (
                        None
                        if pair is None
                        else torch.from_numpy(
                            np.ascontiguousarray(pair[None, :, y0 : y0 + th, x0 : x0 + tw])
                        ).to(dev)
                    )
                    py, px = -th % m, -tw % m
                    if py or px:  # pad to a multiple of the network's stride
                        ta = nnf.pad(ta, (0, px, 0, py), mode="replicate")
                        tb = nnf.pad(tb, (0, px, 0, py), mode="replicate")
                        if tp is not None:
                            tp = nnf.pad(tp, (0, px, 0, py), mode="replicate")
                    out = self._forward(ta, tb, tp)[0, 0, :th, :tw].cpu().numpy()
                    wt = np.outer(
                        _taper(th, overlap // 2 if h > th else 0),
                        _taper(tw, overlap // 2 if w > tw else 0),
                    )
                    acc[y0 : y0 + th, x0 : x0 + tw] += out * wt
                    wsum[y0 : y0 + th, x0 : x0 + tw] += wt
        return acc / wsum

    def _forward(
        self, a: torch.Tensor, b: torch.Tensor, pair: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of one tile, averaged over the 8 dihedral transforms when ``meta.tta``."""
        if not self.meta.tta:
            out: torch.Tensor = self.net(a, b, pair)
            return out
        acc = torch.zeros(a.shape[0], 1, a.shape[2], a.shape[3], device=a.device)
        for flip in (False, True):
            fa, fb = (a.flip(-1), b.flip(-1)) if flip else (a, b)
            fp = None if pair is None else (pair.flip(-1) if flip else pair)
            for k in range(4):
                rp = None if fp is None else torch.rot90(fp, k, (2, 3))
                y = self.net(torch.rot90(fa, k, (2, 3)), torch.rot90(fb, k, (2, 3)), rp)
                y = torch.rot90(y, -k, (2, 3))
                acc += y.flip(-1) if flip else y
        return acc / 8.0

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
        pair = pair_prior(a, b, valid, self.meta.prior, len(self.meta.bands))
        logit = self.logits(a, b, pair)
        prob = (1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60)))).astype(np.float32)
        prob[~valid] = np.nan
        return prob

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the weights (``state_dict``) to ``path`` and the description to ``path.json``."""
        p = Path(path)
        with atomic_path(p, parents=True) as tmp:
            torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, tmp)
        mp = meta_path(p)
        write_text(mp, self.meta.to_json() + "\n")
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
