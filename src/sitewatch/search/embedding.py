"""Learned tile embeddings from a pretrained ResNet backbone (the ``ml`` extra, local weights).

Given local weights (``sitewatch search run --backbone FILE``: a torchvision, timm or TorchGeo
ResNet state dict, :mod:`._backbone`), the search appends to every tile's descriptors the
backbone's feature map at the tile's centre, projected on its first principal components:

* **Inputs.** The run's bands are stretched as for the other descriptors (2nd/98th percentile
  to 0..1, :class:`.features.BandScale`) and mapped to about -2..2 (``4 x (v - 0.5)``), close to
  the per-channel standardisation ImageNet and Sentinel-2 backbones are trained with; nodata
  pixels are 0. :attr:`Embedding.channels` says which of the run's bands feeds each input channel
  of the network (0: none, zeros), so RGB weights can read an RGBN image or 13-band Sentinel-2
  weights a 4-band one.
* **Layer.** The trunk stops after ``layer`` (1-4, strides 4 to 32 px); by default the deepest
  whose stride is no coarser than the tile (4 px tiles: layer 1; 8 px: layer 2; 32 px: layer 4).
* **Blocks without seams.** A block's window is grown by the trunk's receptive-field radius
  plus one feature step and aligned to the trunk's stride, so every feature the tiles use is
  computed from real pixels, never from the window's zero padding: a tile's embedding does not
  depend on how the AOI is cut into blocks (tested).
* **Tile embedding.** The feature map is projected on :attr:`Embedding.components` and sampled
  bilinearly at the tile's centre. The components are the first ``dims`` principal axes of
  feature vectors drawn from random windows of the image itself (fixed by the run's seed), so the
  few columns kept are the directions that vary most over this AOI.

torch is imported only when an embedding is prepared or computed.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from rasterio.io import DatasetReader
from rasterio.windows import Window

from ..errors import InputError
from .features import BandScale, read_block
from .tiles import Block, TileGrid

if TYPE_CHECKING:
    from ._backbone import Trunk

__all__ = ["EMBED_DIMS", "Embedding", "auto_layer", "embed_block", "prepare_embedding"]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]

EMBED_DIMS = 16
"""Principal components of the backbone's features kept per tile (``--embed-dims``)."""
_FIT_WINDOWS = 12  # random windows whose features give the principal axes
_FIT_PX = 256  # their side in pixels
_FIT_VECTORS = 20_000  # at most this many feature vectors for the axes


@dataclass(frozen=True)
class Embedding:
    """A prepared backbone: the weights, where the trunk stops and how its features become
    ``dims`` columns per tile. Everything a dask task needs; the network itself is loaded once
    per process from ``weights``."""

    weights: str
    layer: int
    channels: tuple[int, ...]
    stride: int
    halo: int
    mean: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]
    arch: str = ""

    @property
    def dims(self) -> int:
        """Columns added per tile."""
        return len(self.components)

    def names(self) -> list[str]:
        """Descriptor names of the added columns."""
        return [f"emb_{i}" for i in range(self.dims)]

    def summary(self) -> dict[str, Any]:
        """JSON form for a run's summary (the projection left out)."""
        return {
            "weights": self.weights, "layer": self.layer, "channels": list(self.channels),
            "stride_px": self.stride, "halo_px": self.halo, "dims": self.dims, "arch": self.arch,
        }  # fmt: skip

    def window(self, grid: TileGrid, block: Block) -> Window:
        """The pixel window whose features cover ``block``'s tiles: the tiles' pixels grown by
        :attr:`halo` and aligned to :attr:`stride` (so every block samples one global lattice)."""
        S = self.stride
        r0 = math.floor((block.row0 * grid.stride - self.halo) / S) * S
        c0 = math.floor((block.col0 * grid.stride - self.halo) / S) * S
        r1 = math.ceil(((block.row0 + block.n_rows - 1) * grid.stride + grid.tile + self.halo) / S)
        c1 = math.ceil(((block.col0 + block.n_cols - 1) * grid.stride + grid.tile + self.halo) / S)
        return Window(c0, r0, c1 * S - c0, r1 * S - r0)


def _torch() -> Any:
    from ..analysis.models import require_torch

    return require_torch("learned search embeddings (--backbone)")


@functools.lru_cache(maxsize=4)
def _trunk(weights: str, layer: int, mtime: float) -> Trunk:
    _torch()
    from ._backbone import load_trunk

    return load_trunk(weights, layer)


def _load(weights: str, layer: int) -> Trunk:
    try:
        mtime = Path(weights).stat().st_mtime
    except OSError as exc:
        raise InputError(
            f"backbone weights {weights} not found ({exc}); give the path of a local weights file"
        ) from exc
    return _trunk(weights, layer, mtime)


def auto_layer(tile: int) -> int:
    """The deepest ResNet layer (strides 4, 8, 16, 32 px) no coarser than a ``tile`` px tile."""
    return int(min(4, max(1, math.floor(math.log2(max(tile, 1))) - 1)))


def _inputs(
    raw: NDArray[np.generic], valid: NDArray[np.bool_], scale: BandScale, channels: Sequence[int]
) -> F32:
    v = scale.apply(raw)
    out = np.zeros((len(channels), *valid.shape), dtype=np.float32)
    for i, b in enumerate(channels):
        if b:
            out[i] = np.where(valid, 4.0 * (v[b - 1] - 0.5), 0.0)
    return out


def _features(trunk: Trunk, x: F32) -> F32:
    torch = _torch()
    with torch.inference_mode():
        y = trunk(torch.from_numpy(x)[None])[0]
    out: F32 = y.numpy().astype(np.float32, copy=False)
    return out


def _project(fmap: F32, emb: Embedding) -> F64:
    """The map (C, h, w) on the principal axes (dims, h, w): one float32 product of the map as
    it is, less the projected mean, so no centred or float64 copy of the C-channel map is made
    (256 channels at layer 1 of a ResNet-50 are ~150 MB per 1024 px block in float64)."""
    C, h, w = fmap.shape
    comps = np.asarray(emb.components, dtype=np.float64)  # dims x C
    offset = comps @ np.asarray(emb.mean, dtype=np.float64)
    proj = comps.astype(np.float32) @ fmap.reshape(C, -1)
    out: F64 = proj.astype(np.float64).reshape(-1, h, w) - offset[:, None, None]
    return out


def _sample(f: F64, u: F64, v: F64) -> F64:
    """Bilinear samples of ``f`` (C, h, w) at rows ``u`` x columns ``v``: (len(u), len(v), C)."""
    _, h, w = f.shape
    i0 = np.clip(np.floor(u).astype(np.intp), 0, h - 2)
    j0 = np.clip(np.floor(v).astype(np.intp), 0, w - 2)
    fu, fv = (u - i0)[None, :, None], (v - j0)[None, None, :]
    rows = f[:, i0, :] * (1.0 - fu) + f[:, i0 + 1, :] * fu
    out = rows[:, :, j0] * (1.0 - fv) + rows[:, :, j0 + 1] * fv
    res: F64 = np.ascontiguousarray(np.moveaxis(out, 0, -1))
    return res


def embed_block(
    raw: NDArray[np.generic],
    valid: NDArray[np.bool_],
    window: Window,
    grid: TileGrid,
    block: Block,
    scale: BandScale,
    emb: Embedding,
) -> F64:
    """Embeddings (rows, cols, dims) of ``block``'s tiles; ``raw`` and ``valid`` are the pixels
    of ``window`` (:meth:`Embedding.window`, or a larger window aligned the same way)."""
    trunk = _load(emb.weights, emb.layer)
    fmap = _project(_features(trunk, _inputs(raw, valid, scale, emb.channels)), emb)
    S, s, T = emb.stride, grid.stride, grid.tile
    rows = (block.row0 + np.arange(block.n_rows)) * s + (T - 1) / 2.0
    cols = (block.col0 + np.arange(block.n_cols)) * s + (T - 1) / 2.0
    return _sample(fmap, (rows - window.row_off) / S, (cols - window.col_off) / S)


def _channels(given: Sequence[int] | None, in_channels: int, n_bands: int) -> tuple[int, ...]:
    if given is None:
        if in_channels > n_bands:
            raise InputError(
                f"the backbone takes {in_channels} input channels but the search reads "
                f"{n_bands} band(s); give --backbone-bands with {in_channels} entries, each the "
                f"position (1-{n_bands}) of the band that feeds that channel or 0 for none"
            )
        return tuple(range(1, in_channels + 1))
    out = tuple(int(b) for b in given)
    if len(out) != in_channels:
        raise InputError(
            f"--backbone-bands has {len(out)} entries but the backbone takes {in_channels} "
            "input channels; give one entry per channel (0 for none)"
        )
    bad = [b for b in out if not 0 <= b <= n_bands]
    if bad or not any(out):
        raise InputError(
            f"--backbone-bands entries must be 0 (none) or a band position 1-{n_bands} of the "
            f"bands searched, and at least one must be a band; got {list(out)}"
        )
    return out


def prepare_embedding(
    weights: str | Path,
    dataset: DatasetReader,
    grid: TileGrid,
    bands: Sequence[int],
    scale: BandScale,
    *,
    layer: int = 0,
    channels: Sequence[int] | None = None,
    dims: int = EMBED_DIMS,
    seed: int = 0,
) -> Embedding:
    """Load the backbone, check it fits the image and fit the projection on random windows."""
    if dims < 1:
        raise InputError(f"--embed-dims must be at least 1, got {dims}")
    layer = layer or auto_layer(grid.tile)
    trunk = _load(str(weights), layer)
    info = trunk.info
    chans = _channels(channels, info.in_channels, len(bands))
    S = info.stride
    halo = math.ceil(((info.receptive_field - 1) // 2 + S) / S) * S
    rng = np.random.default_rng(seed)
    side = min(_FIT_PX, max(dataset.height, dataset.width))
    vectors = []
    for _ in range(_FIT_WINDOWS):
        r = int(rng.integers(0, max(dataset.height - side, 0) + 1)) // S * S
        c = int(rng.integers(0, max(dataset.width - side, 0) + 1)) // S * S
        win = Window(c - halo, r - halo, side + 2 * halo, side + 2 * halo)
        raw, valid = read_block(dataset, win, bands)
        fmap = _features(trunk, _inputs(raw, valid, scale, chans))
        # feature i sits on pixel offset + i * S; keep those on valid pixels of the inner part
        centre = valid[::S, ::S][: fmap.shape[1], : fmap.shape[2]]
        inner = np.zeros_like(centre)
        k = halo // S
        inner[k : -k or None, k : -k or None] = True
        keep = centre & inner
        vectors.append(fmap[:, keep].T)
    x = np.vstack(vectors).astype(np.float64)
    if len(x) < 2:
        raise InputError(
            f"{dataset.name} has too few valid pixels to fit the backbone's projection; "
            "search a larger image or leave --backbone out"
        )
    if len(x) > _FIT_VECTORS:
        x = x[rng.choice(len(x), _FIT_VECTORS, replace=False)]
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    k_dims = min(dims, vt.shape[0])
    # a fixed sign per axis (largest loading positive), so reruns give the same columns
    lead = vt[np.arange(k_dims), np.abs(vt[:k_dims]).argmax(axis=1)]
    comps = vt[:k_dims] * np.sign(lead)[:, None]
    logger.info(
        "backbone %s (%s) to layer %d: stride %d px, halo %d px, %d of %d channels kept",
        weights, info.arch, layer, S, halo, k_dims, info.out_channels,
    )  # fmt: skip
    return Embedding(
        str(weights), layer, chans, S, halo,
        tuple(float(v) for v in mean), tuple(tuple(float(v) for v in row) for row in comps),
        info.arch,
    )  # fmt: skip
