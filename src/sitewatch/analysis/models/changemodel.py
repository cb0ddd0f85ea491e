"""A trained change model: the network, its band list and input normalisation; tiled inference;
save/load as a torch ``state_dict`` plus a small JSON file (never pickled objects).

This module imports torch at import time; use it through :mod:`sitewatch.analysis.models`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as nnf

from ...errors import InputError
from ...files import atomic_path, write_text
from .._changeio import nan_nodata
from ..change import indices_for
from . import NORMALISATIONS, PRIORS
from ._network import SiamDiffUNet

__all__ = [
    "FORMAT",
    "INDEX_SCALE",
    "NORMALISATIONS",
    "PRIORS",
    "ChangeModel",
    "InputScale",
    "ModelMeta",
    "input_channels",
    "input_scale",
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


BLOCK_PX = 4_000_000
"""Pixels of one band that a block holds while a whole image is summarised (its statistics, its
valid pixels, the CVA pair channel): a Sentinel-2 tile (10980 px wide) goes by in blocks of 364
rows, and an image of up to this many pixels is one block, whose statistics are then exactly
NumPy's ``mean`` and ``std``."""


def _block_rows(width: int) -> int:
    return max(1, BLOCK_PX // max(int(width), 1))


def _sample_step(h: int, w: int) -> int:
    """A stride that leaves at most about :data:`BLOCK_PX` pixels (1: every pixel)."""
    return max(1, math.ceil(math.sqrt(h * w / BLOCK_PX)))


def _window(
    image: NDArray[Any],
    idx: Sequence[int] | None,
    rows: slice,
    cols: slice = slice(None),
    nodata: float | None = None,
) -> NDArray[np.float32]:
    """Bands ``idx`` (all with None) of ``image`` over ``rows`` and ``cols`` as float32, NaN where
    they equal ``nodata``. Only the window is copied, whatever the image's type."""
    return nan_nodata(image[:, rows, cols] if idx is None else image[list(idx), rows, cols], nodata)


@dataclass(frozen=True)
class InputScale:
    """What the network inputs of one image take from the whole image, so that they can be made
    window by window: each band's mean and standard deviation over its pixels with data (None for
    a band without any), and whether the values are reflectance fractions rather than digital
    numbers (for ``zscore_log``)."""

    mean: tuple[float | None, ...]
    sd: tuple[float, ...]
    fractions: bool = False


def input_scale(
    image: NDArray[Any],
    idx: Sequence[int] | None = None,
    nodata: float | None = None,
    *,
    fractions: bool = False,
) -> InputScale:
    """The :class:`InputScale` of bands ``idx`` of a (band, y, x) ``image`` whose no-data value is
    ``nodata`` (NaN always counts as no data), gathered in blocks of rows, so that a whole tile
    is never copied (population statistics, per-block results merged exactly as Chan et al.).

    With ``fractions``, the values are also checked for reflectance fractions: the 99th
    percentile of all bands at most 2 (every pixel of an image up to :data:`BLOCK_PX` pixels, a
    regular sample of a larger one)."""
    nb = image.shape[0] if idx is None else len(idx)
    h, w = image.shape[1:]
    n = np.zeros(nb, dtype=np.int64)
    mean = np.zeros(nb, dtype=np.float64)
    m2 = np.zeros(nb, dtype=np.float64)
    step = _block_rows(w)
    for y0 in range(0, h, step):
        block = _window(image, idx, slice(y0, y0 + step), nodata=nodata)
        for i in range(nb):
            band = block[i]
            vals = band[np.isfinite(band)].astype(np.float64)
            if not vals.size:
                continue
            mb = float(vals.mean())
            m2b = float(((vals - mb) ** 2).sum())
            if n[i] == 0:
                n[i], mean[i], m2[i] = vals.size, mb, m2b
            else:
                total = n[i] + vals.size
                delta = mb - mean[i]
                m2[i] += m2b + delta * delta * n[i] * vals.size / total
                mean[i] += delta * vals.size / total
                n[i] = total
    sds = [float(np.sqrt(m2[i] / n[i])) if n[i] else 0.0 for i in range(nb)]
    is_fraction = False
    if fractions:
        s = _sample_step(h, w)
        sample = _window(image, idx, slice(None, None, s), slice(None, None, s), nodata)
        ok = np.isfinite(sample)
        is_fraction = bool(ok.any() and float(np.percentile(sample[ok], 99)) <= 2.0)
    return InputScale(
        mean=tuple(float(mean[i]) if n[i] else None for i in range(nb)),
        sd=tuple(sd if sd > 0 else 1.0 for sd in sds),
        fractions=is_fraction,
    )


def normalise_image(
    image: NDArray[Any], clip: float = 6.0, scale: InputScale | None = None
) -> NDArray[np.float32]:
    """Per-image, per-band z-score over the finite pixels, clipped to +-``clip``; NaN becomes 0.
    ``scale`` gives the whole image's statistics when ``image`` is a window of it.

    Normalising each image on its own absorbs most of the radiometric difference between dates.
    """
    x = np.asarray(image, dtype=np.float32)
    s = input_scale(x) if scale is None else scale
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        m = s.mean[i]
        if m is None:
            continue
        band = x[i]
        z = (band - m) / s.sd[i]
        out[i] = np.where(np.isfinite(band), np.clip(z, -clip, clip), 0.0)
    return out


def _log_reflectance(
    image: NDArray[Any], clip: float, fractions: bool | None = None
) -> NDArray[np.float32]:
    """``ln(reflectance / 0.1)`` per band, clipped to +-``clip``; NaN becomes 0.

    Values are read as Sentinel-2 digital numbers (reflectance x 10000, as in L1C/L2A products);
    an image whose 99th percentile is at most 2 is taken to hold reflectance fractions instead
    (``fractions``, when ``image`` is a window of it).
    """
    x = np.asarray(image, dtype=np.float32)
    ok = np.isfinite(x)
    if fractions is None:
        fractions = bool(ok.any() and float(np.percentile(x[ok], 99)) <= 2.0)
    if fractions:
        x = x * np.float32(10000.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lg = np.log(np.maximum(x, np.float32(1.0)) / np.float32(1000.0))
    return np.where(ok, np.clip(lg, -clip, clip), np.float32(0.0)).astype(np.float32)


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
        return n_bands + len(indices_for(bands))
    raise InputError(
        f"unknown input normalisation {normalisation!r} (known: {', '.join(NORMALISATIONS)})"
    )


def _indices(image: NDArray[Any], bands: Sequence[str]) -> NDArray[np.float32]:
    """The spectral indices that ``bands`` allow (:func:`~sitewatch.analysis.change.indices_for`,
    in the order of :data:`~sitewatch.analysis.change.SPECTRAL_INDICES`) of ``image``, times
    :data:`INDEX_SCALE`; 0 where undefined.

    Vegetation, built-up, water and bare soil are the land covers whose swaps make up most real
    change and most seasonal false alarms. Each index is a ratio of bands, so a gain common to the
    bands of one date (sun, atmosphere, calibration) cancels in it, and it keeps the absolute land
    cover that the per-image z-score hides."""
    from ..change import _index, _index_positions

    x = np.asarray(image, dtype=np.float32)
    names = tuple(bands)
    indices = indices_for(names)
    out = np.zeros((len(indices), *x.shape[1:]), dtype=np.float32)
    with np.errstate(invalid="ignore"):
        for i, name in enumerate(indices):
            v = np.clip(_index(x, _index_positions(names, name), name), -1.0, 1.0)
            out[i] = np.nan_to_num(v, nan=0.0) * np.float32(INDEX_SCALE)
    return out


def model_inputs(
    image: NDArray[Any],
    normalisation: str,
    clip: float,
    bands: Sequence[str] = (),
    scale: InputScale | None = None,
) -> NDArray[np.float32]:
    """The network's input channels of one (band, y, x) image, whose bands are named ``bands``
    (needed by ``zscore_indices``); see :data:`NORMALISATIONS`. ``scale`` gives the whole
    image's :func:`input_scale` when ``image`` is a window of it (every channel is then exactly
    what the whole image's inputs hold over that window)."""
    input_channels(image.shape[0], normalisation, bands)  # validates the name and the bands
    if scale is None:
        scale = input_scale(np.asarray(image), fractions=normalisation == "zscore_log")
    z = normalise_image(image, clip, scale)
    if normalisation == "per_image_zscore":
        return z
    if normalisation == "zscore_indices":
        return np.concatenate([z, _indices(image, bands)], axis=0)
    return np.concatenate([z, _log_reflectance(image, clip, scale.fractions)], axis=0)


CVA_SIGMA = 1.0
"""Gaussian smoothing (px) of the CVA pair channel; its kernel reaches ``4 * sigma`` px."""


@dataclass
class _CvaPrior:
    """The ``cva`` pair channel of a whole image, kept as its distance image and scale, so that
    its windows can be cut one at a time."""

    dist: NDArray[np.float32]
    valid: NDArray[np.bool_]
    median: float
    spread: float  # 5 x 1.4826 MAD (1 for a constant image)

    def window(self, rows: slice, cols: slice) -> NDArray[np.float32]:
        d = self.dist[rows, cols]
        z = np.clip((d - np.float32(self.median)) / np.float32(self.spread), -1.0, 4.0)
        return np.where(self.valid[rows, cols], z, np.float32(0.0)).astype(np.float32)[None]


def _cva_prior(
    zscores: Callable[[slice], tuple[NDArray[np.float32], NDArray[np.float32]]],
    valid: NDArray[np.bool_],
) -> _CvaPrior:
    """The ``cva`` channel from ``zscores(rows)``, the z-scored bands of both dates over
    ``rows`` (full width), smoothed in blocks of rows with a halo as deep as the kernel, so that
    every value is the whole image's; the median and MAD come from every valid pixel of an
    image up to :data:`BLOCK_PX` pixels and from a regular sample of a larger one."""
    from scipy import ndimage as ndi

    h, w = valid.shape
    halo = int(4.0 * CVA_SIGMA + 0.5)
    step = _block_rows(w)
    dist = np.zeros((h, w), dtype=np.float32)
    for y0 in range(0, h, step):
        y1 = min(h, y0 + step)
        ya, yb = max(0, y0 - halo), min(h, y1 + halo)
        za, zb = zscores(slice(ya, yb))
        sq = np.zeros((yb - ya, w), dtype=np.float64)
        for i in range(za.shape[0]):
            d = ndi.gaussian_filter(zb[i].astype(np.float64) - za[i], CVA_SIGMA, mode="nearest")
            sq += d * d
        dist[y0:y1] = np.sqrt(sq[y0 - ya : y1 - ya])
    med, spread = 0.0, 5.0
    s = _sample_step(h, w)
    vals = dist[::s, ::s][valid[::s, ::s]]
    if vals.size:
        med = float(np.median(vals))
        mad = 1.4826 * float(np.median(np.abs(vals - np.float32(med))))
        spread = 5.0 * (mad if mad > 0 else 1.0)
    return _CvaPrior(dist, valid, med, spread)


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
    cva = _cva_prior(lambda rows: (a[:n_bands, rows], b[:n_bands, rows]), np.asarray(valid, bool))
    return cva.window(slice(None), slice(None))


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


_Tile = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32] | None]
"""One tile's inputs: BEFORE, AFTER and the pair channels (None without a prior)."""


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


@contextmanager
def _channels_last(net: torch.nn.Module) -> Iterator[None]:
    """Hold ``net``'s weights in the channels-last layout for the block, then give them back
    their usual layout (what the optimiser and :meth:`ChangeModel.save` expect).

    With channels-last weights, oneDNN runs the convolutions on channels-last activations: on
    2 CPU threads a 256 px tile took 0.046 s instead of 0.092 s (session 24, the same logits to
    1e-5); training steps gained nothing (0.455 against 0.466 s), so only inference uses it."""
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        yield
    finally:
        net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


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

        def tile(rows: slice, cols: slice) -> _Tile:
            return a[:, rows, cols], b[:, rows, cols], None if pair is None else pair[:, rows, cols]

        return self._tiled(a.shape[1], a.shape[2], tile)

    def _tiled(
        self,
        h: int,
        w: int,
        tile: Callable[[slice, slice], _Tile],
        progress: Callable[[float], None] | None = None,
    ) -> NDArray[np.float32]:
        """Logits of an ``h`` x ``w`` image whose inputs ``tile(rows, cols)`` gives window by
        window. The tiles overlap by ``meta.overlap`` px and are blended with weights that ramp
        up over half of it; as every tile gets the same separable weights, their sum is the
        product of one column and one row, so the only full-size array is the result."""
        size, m = self.meta.tile, self.net.multiple
        overlap = min(self.meta.overlap, size // 2)
        th, tw = min(size, h), min(size, w)
        ys, xs = _starts(h, th, th - overlap), _starts(w, tw, tw - overlap)
        ty = _taper(th, overlap // 2 if h > th else 0)
        tx = _taper(tw, overlap // 2 if w > tw else 0)
        wt = np.outer(ty, tx)
        wy, wx = np.zeros(h, dtype=np.float32), np.zeros(w, dtype=np.float32)
        for y0 in ys:
            wy[y0 : y0 + th] += ty
        for x0 in xs:
            wx[x0 : x0 + tw] += tx
        acc = np.zeros((h, w), dtype=np.float32)
        self.net.eval()
        dev = self.device
        done, total = 0, len(ys) * len(xs)

        def tensor(x: NDArray[np.float32]) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32)).to(dev)
            py, px = -th % m, -tw % m
            if py or px:  # pad to a multiple of the network's stride
                t = nnf.pad(t, (0, px, 0, py), mode="replicate")
            return t

        with torch.inference_mode(), _channels_last(self.net):
            for y0 in ys:
                for x0 in xs:
                    rows, cols = slice(y0, y0 + th), slice(x0, x0 + tw)
                    xa, xb, xp = tile(rows, cols)
                    tp = None if xp is None else tensor(xp)
                    out = self._forward(tensor(xa), tensor(xb), tp)[0, 0, :th, :tw].cpu().numpy()
                    acc[rows, cols] += out * wt
                    done += 1
                    if progress is not None:
                        progress(done / total)
        acc /= wy[:, None]
        acc /= wx[None, :]
        return acc

    def _forward(
        self, a: torch.Tensor, b: torch.Tensor, pair: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of one tile, averaged over the 8 dihedral transforms when ``meta.tta``.

        One call a transform: batching them (the four that keep the tile's shape, then the four
        that transpose it) gave the same logits (6e-8) but ran at 0.72x the speed on one thread
        for a 256 px tile (1.67 s against 1.21 s; session 22), the larger activations falling
        out of cache."""
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
        self,
        before: NDArray[Any],
        after: NDArray[Any],
        bands: Sequence[str],
        *,
        nodata_before: float | None = None,
        nodata_after: float | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> NDArray[np.float32]:
        """Change probability per pixel (NaN where a band of either image has no data).

        The images may be of any numeric type, as stored, with their no-data values (NaN always
        counts as no data). They are read window by window: the inputs of each tile are made from
        the whole images' statistics (:func:`input_scale`) when the tile is reached, so that
        besides the images themselves only the result and the valid pixels are held (0.6 GB
        for a Sentinel-2 tile), and with a ``cva`` prior one distance image (0.5 GB more): the
        CLI ran a tile pair in 3.0 GB, 1.06x what reading both files takes (``bench/change.py
        --cli --model``). ``progress`` gets the share of tiles done."""
        if before.ndim != 3:
            raise InputError(f"expected (band, y, x) images, got shape {before.shape}")
        if before.shape != after.shape:
            raise InputError(f"BEFORE {before.shape} and AFTER {after.shape} differ in shape")
        if len(bands) != before.shape[0]:
            raise InputError(f"{len(bands)} band names for {before.shape[0]} bands")
        idx = _band_index(bands, self.meta.bands)
        _, h, w = before.shape
        valid = np.zeros((h, w), dtype=bool)
        step = _block_rows(w)
        for y0 in range(0, h, step):
            rows = slice(y0, y0 + step)
            valid[rows] = np.isfinite(_window(before, None, rows, nodata=nodata_before)).all(
                axis=0
            ) & np.isfinite(_window(after, None, rows, nodata=nodata_after)).all(axis=0)
        if not valid.any():
            raise InputError("the two images have no pixel with data in both: nothing to compare")
        log = self.meta.normalisation == "zscore_log"
        sa = input_scale(before, idx, nodata_before, fractions=log)
        sb = input_scale(after, idx, nodata_after, fractions=log)

        def inputs(rows: slice, cols: slice) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
            xa = _window(before, idx, rows, cols, nodata_before)
            xb = _window(after, idx, rows, cols, nodata_after)
            norm, clip, names = self.meta.normalisation, self.meta.clip, self.meta.bands
            return model_inputs(xa, norm, clip, names, sa), model_inputs(xb, norm, clip, names, sb)

        cva: _CvaPrior | None = None
        if self.meta.prior == "cva":
            n = len(self.meta.bands)

            def zscores(rows: slice) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
                xa = _window(before, idx, rows, nodata=nodata_before)
                xb = _window(after, idx, rows, nodata=nodata_after)
                clip = self.meta.clip
                return normalise_image(xa, clip, sa)[:n], normalise_image(xb, clip, sb)[:n]

            cva = _cva_prior(zscores, valid)
        elif self.meta.prior != "none":
            raise InputError(f"unknown prior {self.meta.prior!r} (known: {', '.join(PRIORS)})")

        def tile(rows: slice, cols: slice) -> _Tile:
            xa, xb = inputs(rows, cols)
            return xa, xb, None if cva is None else cva.window(rows, cols)

        prob = self._tiled(h, w, tile, progress)
        np.clip(prob, -60, 60, out=prob)  # the logistic, in place
        np.negative(prob, out=prob)
        np.exp(prob, out=prob)
        prob += np.float32(1.0)
        np.reciprocal(prob, out=prob)
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
