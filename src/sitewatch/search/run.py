"""The search job: examples -> model -> every block of the AOI scored on dask -> candidates.

1. The image's tile grid and band stretch are set once (the stretch from a decimated read).
2. Positive tiles are those containing each example point; negative tiles are random tiles of
   the AOI away from the examples. A :class:`~sitewatch.search.model.SearchModel` is fitted.
3. Every block of tiles is a dask task that opens the image itself, reads one block (plus halo),
   computes the descriptors and returns the block's scores. Tasks run on local threads by
   default, or on a ``dask.distributed`` cluster given its scheduler address: the task function
   is pure, so both give the same scores.
4. Non-maximum suppression and clustering turn the score grid into ranked candidates.
5. The best candidates covering the ``rerank`` share of the area (4%, at most
   :data:`RERANK_MAX` candidates), and at least the
   ``top`` candidates returned, are re-ranked by the second stage
   (:mod:`sitewatch.search.rerank`): richer descriptors of each candidate tile, scored by a
   forest cross-fitted with the other candidates as hard negatives. Their ``score`` is the
   second stage's, ``stage1_score`` the first stage's.

What did not raise recall at 500x (issue 8; ``search eval`` seeds 0-2 with the 80 m tiles of
then, held-out sites found of 60 after the second stage, NAIP / Landsat; what did was 40 m tiles,
see :mod:`.evaluate`; the same pipeline replayed on cached first-stage
descriptors finds 53 / 39-40 with the defaults, and the first stage passes 59 / 42 of them on to
the second). Landsat's background is the ~90 m Landsat pixels used one to one as 10 m pixels, so
it is not smooth (lag-1 differences have a standard deviation of 18 DN against 33 DN overall);
the sites the first stage misses lie in mottled town and field-edge clutter, where a planted
site changes a 400 m box by 1-3 DN on average, and the misses are not near misses (2 of 60 have
a candidate within one stride). Each variant moved one to four sites, in either direction per
family, which is within the spread between seeds; none is in the defaults:

* contrast of each tile to its ring (the context window less the tile): per band the tile mean
  minus the ring mean over the ring standard deviation, the tile-to-ring standard deviation
  ratio, the norm of those contrasts and of the most contrasting cell: 49 / 40 (Landsat passed
  43);
* high-frequency energy of the tile and relative to its ring (|Laplacian|, difference of
  Gaussians, a 7-pixel oriented line filter, gradient; mean, ratio to the ring, best cell):
  Landsat passed 40-42 with the linear model, 44-45 with a forest;
* a forest (ExtraTrees, 100 trees) instead of the hybrid model: on its own it finds 35 of 60
  Landsat sites at 500x (16 for the hybrid) but passes 45 on and ends at 52 / 38; the sum of the
  log rank shares of the hybrid and the forest passes 47 and ends at 52 / 41-42, and the hybrid
  with the contrast descriptors fused with the forest at 54 / 38;
* a forest cross-fitted on the first-stage descriptors of the best 10% or 20% of the area, its
  best 4% passed on: Landsat passed 46; 12,000 random negatives instead of 3,000: 43-44;
* a second stage over 8% of the area after the hybrid or the fused first stage: Landsat 40; the
  first stage's rank blended into the final order (weights 0.3-1): 39-42.

Since, with 40 m tiles (session 6; 58 / 51 with the defaults): a second stage over 8% of the
area, 58 / 50; positives from every tile within two strides of each example point (25 tiles an
example instead of 4, to show the model the shelters, berms and spoil around the apron), 47 / 35;
the first stage's nearest-example or logistic part alone (``--method``), Landsat 49 or 51; two
hard-negative rounds (``--hard-rounds 2``), 50; clipping z-scores to the examples' range plus 0.5
(``--clip-margin 0.5``), 47.
On held-out seeds 10 and 11, 15 of the 16 Landsat sites missed at 500x had their best tile
ranked beyond 27,000th of 4.2 million by the first stage (the other, 2,574th, was put 7,150th by
the second), while 20 of the 24 found were ranked 6th to 143rd by the second stage (the other
four 1,211th to 2,061st, within the 2,102-candidate budget). Session 7 followed the misses into
the second stage (its 42,043 candidates): on seed 11, 8 of the 9 never reached it (best tiles
ranked 127,000th to 800,000th) and one was put 26,908th; on seed 10, 3 of the 7 never reached it
and 4 did but were put 7,149th to 36,459th, below where the first stage had them. So most
Landsat misses are lost by the first stage and some by both. A wider second stage (8% of the
area) would reach 5 of seed 11's misses, but on the development seeds it found 50 of 60 on seeds
0-2 (51 with 4%) and 51 on seeds 3-5 (49 with 4%): 101 against 100 of 120, not adopted.

Contrast to the ring at 40 m tiles (session 7; first tried with 80 m tiles, above): per band the
tile mean minus the ring mean over the ring's standard deviation plus 0.02, the ratio of the
tile's standard deviation to the ring's (same guard), the norm of the first and the largest
of the second, ten more descriptors at 4 bands (equal to a per-tile computation; 227 km2/s on
the benchmark). On the development seeds, held-out sites found at 500x: Landsat 51 / 53 / 49 on
seeds 0-2 / 3-5 / 6-8 against 51 / 49 / 50 (153 against 150 of 180), NAIP 60 against 58 of 60
(seeds 0-2), SpaceNet 60 of 60 either way. On held-out seeds 10-12 Landsat found 35-36 of 60
(40 without) and NAIP 57-60 (58 without), SpaceNet 60: not adopted. The two held-out runs
differ only in the tile variance being summed from float32 or float64 squares (a 2e-4 change
of a flat tile's standard deviation), which moved NAIP seed 10 by three sites (20 -> 17): one
seed's recall at 500x moves by a few sites on perturbations that small, so differences of a
few sites in 60 between variants are within the evaluation's own noise.

Session 8, development seeds 0-8, Landsat held-out sites found at 500x of 180 (149 with the
defaults in the same code): candidates picked on the first-stage score plus its neighbourhood
mean (scores as -log(1 - rank share), mean over 5 x 5 or 9 x 9 cells, weight 1, so that a
site's several features add up where clutter is a lone tile), 145 and 145; a wider
non-maximum suppression (2 or 3 cells instead of 1, fewer neighbouring duplicates in the
budget), 148 and 149: not adopted.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.io import DatasetReader
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from ..cluster import LOCAL_SCHEDULERS, connect
from ..errors import AnalysisError, ImageryError, InputError, gdal_text
from .candidates import (
    RankedCandidate,
    candidates_at,
    make_candidates,
    non_max_suppression,
    overlapping,
    reorder_candidates,
    suppress_overlaps,
)
from .embedding import EMBED_DIMS, Embedding, embed_block, prepare_embedding
from .features import (
    BandScale,
    FeatureConfig,
    block_features,
    estimate_scale,
    read_block,
)
from .model import Method, SearchModel, fit_model
from .rerank import cross_fitted_scores, near_tiles, positive_descriptors, read_windows
from .rerank import window_descriptors as _window_descriptors
from .spectral import SpectralMatch, fuse_ranks, prepare_spectral
from .tiles import Block, TileGrid, default_tile

__all__ = [
    "SearchParams",
    "SearchResult",
    "Source",
    "compute_tile_features",
    "example_tiles",
    "new_run_id",
    "rerank_block",
    "run_search",
    "score_block",
]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
Progress = Callable[[int, int], None]
# the second stage re-ranks the first stage's candidates covering this share of the searched area
RERANK_SHARE = 0.04
MATCH_PEAKS = 0.25
"""The spectral match's best tiles (this share of the fused pool's size, by non-maximum
suppression on the match alone) are offered as other positions of the pool's candidates they
overlap: the first stage's suppression picks one tile of a place by its score, and the match
may peak on the neighbouring one (Landsat, development seeds 0-8: 167 of 180 held-out sites at
500x against 159 without; 164 with a share of 0.1 or 1.0; NAIP seeds 0-5 117 of 120 either
way; adding the match's peaks that overlap no candidate as well, 168 and 113)."""
RERANK_BACKGROUND = 1000  # random background windows for the second stage's model
RERANK_MAX = 200_000
"""At most this many candidates go to the second stage, whatever ``rerank`` share of the area:
4% of North Korea in 40 m tiles would be 3 million windows (about 3 GB of candidates and
descriptors). 200,000 candidates are 320 km2 of 40 m tiles, more than the 500x review budget of
all of North Korea (241 km2, 150,000 tiles), so even there the second stage can lift sites from
below the first stage's review list; ``search eval``'s mosaics reach about 42,000 (Landsat). With each
forest fitted on at most :data:`.rerank.HARD_MAX` candidates, the second stage costs little
per candidate: re-ranking all 168,000 candidates of the 8192^2 benchmark (40 m tiles) instead of
50,000 (the cap until session 6) took the search from 25.1 to 28.8 s."""
BLOCK_PX = 1024
"""Pixels on a side of a block of tiles (one dask task) when ``SearchParams.block_tiles`` is 0.
With 40 m tiles at 10 m (4 px, stride 2) blocks of 64 tiles (128 px) spent most of their time on
the halo and the task overhead: the first stage searched 80 km2/s, 132 with 256-tile blocks.
A block's window (the block and its halo) spans 2 x 2 of a tiled GeoTIFF's 512 px blocks when
the block is 512 px, each decoded by about four tasks, and 3 x 3 when it is 1024 px (2.25
decodes per GeoTIFF block): the 8192^2 benchmark's first stage took 17.3 s with 512 px blocks,
14.7 s with 1024 (233 -> 264 km2/s end to end). Features are computed in cache-sized sub-blocks
inside a block (``features._SUB_PX``), so larger blocks cost memory only: at stride 2 a task
holds its 262,144 tiles' 44 descriptors twice (the block and their z-scores), about 190 MB, or
three times on a nodata edge (the valid rows copied out); the benchmark's peak was 905 MB with 2
threads."""


@dataclass(frozen=True)
class SearchParams:
    """Knobs of a search run.

    ``rerank`` is the share of the searched area whose best first-stage candidates the second
    stage re-ranks (:mod:`sitewatch.search.rerank`; 0 turns it off), at most
    :data:`RERANK_MAX` of them. ``block_tiles`` is the side of a block of tiles, one dask task;
    0 (the default) picks about :data:`BLOCK_PX` pixels, at least 64 tiles. ``tile`` 0 (the
    default) is about :data:`~sitewatch.search.tiles.TILE_M` (40 m) on the ground, in the
    image's pixels (:meth:`for_image`), and ``stride`` 0 half the tile. ``backbone`` is the path
    of local pretrained ResNet weights whose embeddings join the first stage's descriptors
    (:mod:`sitewatch.search.embedding`): ``backbone_layer`` where the trunk stops (0: the deepest
    no coarser than a tile), ``backbone_bands`` which searched band feeds each of its input
    channels (1-based, 0 for none; default the first bands), ``embed_dims`` the principal
    components kept. ``spectral`` adds the examples' per-pixel spectral match
    (:mod:`sitewatch.search.spectral`) to the first stage's descriptors and fuses the
    candidates' order by it with the search's final order (reciprocal rank fusion).
    """

    tile: int = 0
    stride: int = 0
    block_tiles: int = 0
    top: int = 100
    negatives: int = 3000
    method: Method = "hybrid"
    seed: int = 0
    bands: tuple[int, ...] | None = None
    context: bool = True
    site: bool = False
    hard_rounds: int = 0
    clip_margin: float | None = None
    rerank: float = RERANK_SHARE
    backbone: str | None = None
    backbone_layer: int = 0
    backbone_bands: tuple[int, ...] | None = None
    embed_dims: int = EMBED_DIMS
    spectral: bool = True

    def __post_init__(self) -> None:
        for name in ("tile", "stride", "block_tiles"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0 (0: automatic), got {getattr(self, name)}")
        if not 0 <= self.backbone_layer <= 4:
            raise InputError(
                f"backbone layer must be 1 to 4 (0: automatic), got {self.backbone_layer}"
            )
        if self.embed_dims < 1:
            raise InputError(f"embed dims must be at least 1, got {self.embed_dims}")
        if self.top < 1:
            raise InputError(f"top must be at least 1 candidate, got {self.top}")
        if self.negatives < 100:
            raise InputError(
                f"negatives must be at least 100 random background tiles, got {self.negatives}: "
                "the model learns the background from them (default 3000)"
            )
        if self.hard_rounds < 0:
            raise InputError(f"hard rounds must be >= 0, got {self.hard_rounds}")
        if self.clip_margin is not None and self.clip_margin < 0:
            raise InputError(
                f"clip margin must be >= 0 robust deviations, got {self.clip_margin}; leave it "
                "out not to clip to the examples' range"
            )
        if not 0.0 <= self.rerank < 1.0:
            raise InputError(f"rerank must be a share of the area in [0, 1), got {self.rerank}")
        if self.tile and not self.stride:
            object.__setattr__(self, "stride", max(self.tile // 2, 1))
        if self.block_tiles == 0 and self.stride:
            side = max(64, BLOCK_PX // self.stride)
            object.__setattr__(self, "block_tiles", side)

    def for_image(self, dataset: DatasetReader) -> SearchParams:
        """These parameters with an automatic tile (0) set for ``dataset``'s pixel size."""
        if self.tile:
            return self
        return replace(self, tile=default_tile(dataset))

    @property
    def features(self) -> FeatureConfig:
        """The descriptor configuration."""
        return FeatureConfig(
            tile=self.tile, stride=self.stride, context=self.context, site=self.site
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "tile": self.tile, "stride": self.stride, "block_tiles": self.block_tiles,
            "top": self.top, "negatives": self.negatives, "method": self.method,
            "seed": self.seed, "bands": list(self.bands) if self.bands else None,
            "context": self.context, "site": self.site, "hard_rounds": self.hard_rounds,
            "clip_margin": self.clip_margin, "rerank": self.rerank, "backbone": self.backbone,
            "backbone_layer": self.backbone_layer,
            "backbone_bands": list(self.backbone_bands) if self.backbone_bands else None,
            "embed_dims": self.embed_dims, "spectral": self.spectral,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchParams:
        """From :meth:`to_dict`."""
        bands, bb = data.get("bands"), data.get("backbone_bands")
        # runs saved before the second stage existed were not re-ranked, and those saved
        # before the spectral match existed had none
        return cls(**{
            "rerank": 0.0, "spectral": False, **data, "bands": tuple(bands) if bands else None,
            "backbone_bands": tuple(bb) if bb else None,
        })  # fmt: skip


@dataclass
class SearchResult:
    """Everything a run produced (what triage needs to resume, and the summary figures)."""

    run_id: str
    image: str
    dem: str | None
    params: SearchParams
    grid: TileGrid
    scale: BandScale
    bands: tuple[int, ...]
    model: SearchModel
    scores: NDArray[np.float32]
    candidates: list[RankedCandidate]
    candidate_features: F64
    positives: F64
    negatives: F64
    examples: list[tuple[float, float]]
    area_km2: float
    seconds: float
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per step, in order: ``model`` (grid, stretch, examples, negatives, fit),
    ``first_stage`` (every tile scored), ``candidates`` (NMS), ``second_stage`` (re-ranking),
    ``finish`` (the kept candidates' descriptors); they add up to ``seconds``."""
    embedding: Embedding | None = None
    """The backbone whose embeddings were appended to the descriptors (``params.backbone``)."""
    spectral: SpectralMatch | None = None
    """The examples' per-pixel spectral model whose tile score was appended (``params.spectral``)."""

    @property
    def km2_per_s(self) -> float:
        """Search speed."""
        return self.area_km2 / self.seconds if self.seconds > 0 else math.inf

    @property
    def top_area_km2(self) -> float:
        """Area covered by the candidates (they never overlap)."""
        return float(sum(c.area_km2 for c in self.candidates))

    def summary(self) -> dict[str, Any]:
        """The JSON summary of the run."""
        return {
            "run_id": self.run_id,
            "image": self.image,
            "area_km2": round(self.area_km2, 4),
            "time_s": round(self.seconds, 3),
            "km2_per_s": float(f"{self.km2_per_s:.4g}"),  # 4 significant digits: small areas too
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "tile_px": self.params.tile,
            "stride_px": self.params.stride,
            "tiles": int(np.isfinite(self.scores).sum()),
            "candidates": len(self.candidates),
            "top_area_km2": round(self.top_area_km2, 4),
            "top_area_fraction": self.top_area_km2 / self.area_km2 if self.area_km2 else 0.0,
            "area_reduction": self.area_km2 / self.top_area_km2 if self.top_area_km2 else None,
            "method": self.model.method,
            "positives": len(self.positives),
            "negatives": len(self.negatives),
            "embedding": self.embedding.summary() if self.embedding is not None else None,
            "spectral": self.spectral.summary() if self.spectral is not None else None,
        }


def new_run_id() -> str:
    """A fresh, sortable run id."""
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


# --- block work (runs inside dask tasks) --------------------------------------------------------


def _pixel_m(grid: TileGrid) -> tuple[float, float]:
    a, e = abs(grid.transform.a), abs(grid.transform.e)
    if grid.crs is not None and grid.crs.is_geographic:
        _, lat = grid.transform * (grid.width / 2.0, grid.height / 2.0)
        return a * 111_320.0 * math.cos(math.radians(lat)), e * 110_574.0
    return a, e


def _read_dem(dem_path: str, grid: TileGrid, window: rasterio.windows.Window) -> F64:
    out = np.full((int(window.height), int(window.width)), np.nan, dtype=np.float64)
    with rasterio.open(dem_path) as dem:
        reproject(
            source=rasterio.band(dem, 1),
            destination=out,
            dst_transform=grid.transform
            * rasterio.Affine.translation(window.col_off, window.row_off),
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=Resampling.bilinear,
            ERROR_THRESHOLD=0.0,
        )
    return out


@dataclass(frozen=True)
class Source:
    """What every task of a search reads: the image (a path, which each task opens itself), its
    tile grid, the descriptor settings, the band stretch, the bands searched and the DEM."""

    image: str
    grid: TileGrid
    cfg: FeatureConfig
    scale: BandScale
    bands: tuple[int, ...]
    dem: str | None = None

    @property
    def n_features(self) -> int:
        """Descriptors per tile."""
        return len(self.cfg.names(len(self.bands), self.dem is not None))


def _block_features(src: Source, block: Block) -> tuple[F64, NDArray[np.bool_], NDArray[np.bool_]]:
    grid, cfg = src.grid, src.cfg
    window = grid.block_window(block, cfg.halo)
    emb = cfg.embedding
    read = window if emb is None else _union(window, emb.window(grid, block), emb.stride)
    with rasterio.open(src.image) as ds:
        raw_all, valid_all = read_block(ds, read, src.bands)
    r0, c0 = int(window.row_off - read.row_off), int(window.col_off - read.col_off)
    inner = (slice(r0, r0 + int(window.height)), slice(c0, c0 + int(window.width)))
    raw, valid = raw_all[(slice(None), *inner)], valid_all[inner]
    z = _read_dem(src.dem, grid, window) if src.dem else None
    feats, ok = block_features(
        raw, valid, (block.n_rows, block.n_cols), cfg, src.scale, z, _pixel_m(grid)
    )
    if emb is not None:
        vecs = embed_block(raw_all, valid_all, read, grid, block, src.scale, emb)
        vecs[~ok] = np.nan
        feats = np.concatenate([feats, vecs], axis=-1)
    if cfg.spectral is not None:
        shape = (block.n_rows, block.n_cols)
        match = cfg.spectral.tile_means(
            raw, valid, shape, grid.stride, grid.cells_per_tile, cfg.halo
        )
        match[~ok] = np.nan
        feats = np.concatenate([feats, match[..., None]], axis=-1)
    return feats, ok, valid


def _union(a: Window, b: Window, align: int) -> Window:
    """The smallest window holding ``a`` and ``b`` whose origin and size are multiples of
    ``align`` (``b`` is already aligned, so the embedding's lattice is kept)."""
    r0 = math.floor(min(a.row_off, b.row_off) / align) * align
    c0 = math.floor(min(a.col_off, b.col_off) / align) * align
    r1 = math.ceil(max(a.row_off + a.height, b.row_off + b.height) / align) * align
    c1 = math.ceil(max(a.col_off + a.width, b.col_off + b.width) / align) * align
    return Window(c0, r0, c1 - c0, r1 - r0)


def score_block(
    src: Source, block: Block, model: dict[str, Any]
) -> tuple[Block, NDArray[np.float32], float, NDArray[np.float32] | None]:
    """Scores of one block's tiles, the area (km2) of the valid pixels the block owns and the
    tiles' spectral match (None without one)."""
    grid = src.grid
    feats, ok, valid = _block_features(src, block)
    m = SearchModel.from_dict(model)
    scores = np.full(ok.shape, np.nan, dtype=np.float32)
    if ok.all():  # the usual block, away from nodata: score the array as it is, no copy
        scores[...] = m.score(feats.reshape(-1, feats.shape[-1])).reshape(ok.shape)
    elif ok.any():
        scores[ok] = m.score(feats[ok]).astype(np.float32)
    # the pixels this block owns: its tiles' first cells, plus the tail on the last row/column
    s, k, P = grid.stride, grid.cells_per_tile, src.cfg.halo
    rows = block.n_rows * s + ((k - 1) * s if block.row0 + block.n_rows == grid.n_rows else 0)
    cols = block.n_cols * s + ((k - 1) * s if block.col0 + block.n_cols == grid.n_cols else 0)
    n_valid = int(valid[P : P + rows, P : P + cols].sum())
    area = n_valid * grid.pixel_area_m2((block.row0 + block.n_rows / 2) * s) / 1e6
    match = feats[..., -1].astype(np.float32) if src.cfg.spectral is not None else None
    return block, scores, area, match


def compute_tile_features(src: Source, tiles: Sequence[tuple[int, int]]) -> F64:
    """Descriptors of the given tiles (rows in the order given; NaN rows for empty tiles)."""
    out = np.full((len(tiles), src.n_features), np.nan)
    for i, (r, c) in enumerate(tiles):
        feats, _, _ = _block_features(src, Block(r, c, 1, 1))
        out[i] = feats[0, 0]
    return out


# --- the job ---------------------------------------------------------------------------------------


def _in_image_crs(
    grid: TileGrid, examples: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The example points (lon, lat) in the image's CRS (x, y)."""
    if grid.crs is None:
        raise ImageryError("the image has no CRS, so the example coordinates cannot be placed")
    to_img = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    return [to_img.transform(lon, lat) for lon, lat in examples]


def example_tiles(grid: TileGrid, examples: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    """The tiles (row, col) holding each example point (lon, lat), sorted and unique."""
    tiles: list[tuple[int, int]] = []
    outside = []
    for (lon, lat), (x, y) in zip(examples, _in_image_crs(grid, examples), strict=True):
        found = grid.tiles_containing(x, y)
        if not found:
            outside.append((lon, lat))
        tiles += found
    if outside:
        logger.warning("%d example(s) lie outside the image: %s", len(outside), outside[:5])
    if not tiles:
        raise InputError(
            f"none of the {len(examples)} examples lies inside the image "
            f"(first: {examples[0] if examples else None}); give examples within the searched area"
        )
    return sorted(set(tiles))


def example_pixels(
    grid: TileGrid, examples: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The (row, col) pixel positions of the example points (lon, lat) inside the image."""
    out = []
    for x, y in _in_image_crs(grid, examples):
        col, row = ~grid.transform * (x, y)
        if 0 <= row < grid.height and 0 <= col < grid.width:
            out.append((float(row), float(col)))
    return out


def _negative_patches(grid: TileGrid, n: int, seed: int, patch: int = 8) -> list[Block]:
    """Random patches of ``patch`` x ``patch`` tiles holding about ``n`` tiles in all."""
    rng = np.random.default_rng(seed)
    pr, pc = min(patch, grid.n_rows), min(patch, grid.n_cols)
    n_patches = max(1, math.ceil(n / (pr * pc)))
    slots_r, slots_c = grid.n_rows // pr, grid.n_cols // pc
    total = max(slots_r * slots_c, 1)
    picks = rng.choice(total, size=min(total, n_patches), replace=False)
    out = []
    for f in sorted(int(v) for v in picks):
        r, c = divmod(f, max(slots_c, 1))
        out.append(Block(r * pr, c * pc, pr, pc))
    return out


def _negative_block(src: Source, block: Block, exclude: NDArray[np.int64]) -> F64:
    """Features of the valid tiles of one patch more than two tiles away from the examples."""
    feats, ok, _ = _block_features(src, block)
    rr, cc = np.nonzero(ok)
    if len(exclude):
        d = np.maximum(
            np.abs(rr[:, None] + block.row0 - exclude[None, :, 0]),
            np.abs(cc[:, None] + block.col0 - exclude[None, :, 1]),
        ).min(axis=1)
        keep = d > 2 * src.grid.cells_per_tile
        rr, cc = rr[keep], cc[keep]
    out: F64 = feats[rr, cc]
    return out


def _negative_features(
    src: Source,
    exclude: Sequence[tuple[int, int]],
    n: int,
    seed: int,
    scheduler: str | None = None,
) -> F64:
    """Features of random background tiles more than two tiles away from the examples.

    The patches are dask tasks on the same scheduler as the search.
    """
    from dask.delayed import delayed

    ex = np.array(exclude, dtype=np.int64).reshape(-1, 2)
    task = delayed(_negative_block, pure=True)
    patches = _negative_patches(src.grid, n, seed, patch=16 if n > 4096 else 8)
    d_src = delayed(src, pure=True)
    rows_out = _run_tasks([task(d_src, b, ex) for b in patches], scheduler, None)
    return np.vstack(rows_out) if rows_out else np.zeros((0, src.n_features))


def _tiles_features_blocked(src: Source, tiles: Sequence[tuple[int, int]], block_tiles: int) -> F64:
    """Features of scattered tiles, grouped by the block they fall in (one read per block)."""
    out = np.full((len(tiles), src.n_features), np.nan)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (r, c) in enumerate(tiles):
        groups.setdefault((r // block_tiles, c // block_tiles), []).append(i)
    for idx in groups.values():
        rs = [tiles[i][0] for i in idx]
        cs = [tiles[i][1] for i in idx]
        block = Block(min(rs), min(cs), max(rs) - min(rs) + 1, max(cs) - min(cs) + 1)
        feats, _, _ = _block_features(src, block)
        for i in idx:
            out[i] = feats[tiles[i][0] - block.row0, tiles[i][1] - block.col0]
    return out


def _run_tasks(tasks: list[Any], scheduler: str | None, progress: Progress | None) -> list[Any]:
    from dask.base import compute

    total = len(tasks)
    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        from dask.callbacks import Callback

        done = [0]

        def _post(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if isinstance(result, tuple) and len(result) == 3 and isinstance(result[0], Block):
                done[0] += 1
                if progress is not None:
                    progress(done[0], total)

        with Callback(posttask=_post):  # type: ignore[no-untyped-call]
            return list(compute(*tasks, scheduler=scheduler or "threads"))  # type: ignore[no-untyped-call]
    from distributed import as_completed

    client = connect(scheduler)
    try:
        futures = client.compute(tasks)  # type: ignore[no-untyped-call]
        for i, _ in enumerate(as_completed(futures), start=1):  # type: ignore[no-untyped-call]
            if progress is not None:
                progress(i, total)
        return list(client.gather(futures))  # type: ignore[no-untyped-call]
    finally:
        client.close()  # type: ignore[no-untyped-call]


def rerank_block(
    image: str,
    grid: TileGrid,
    tiles: Sequence[tuple[int, int]],
    scale: BandScale,
    bands: tuple[int, ...],
    augment: bool = False,
) -> F64:
    """Second-stage descriptors of ``tiles`` (a dask task; ``augment``: the 8 flips/rotations)."""
    with rasterio.open(image) as ds:
        chips, valid = read_windows(ds, grid, tiles, scale, bands)
    if augment:
        return positive_descriptors(chips, valid)
    return _window_descriptors(chips, valid)


def _rerank(
    src: Source,
    cands: list[RankedCandidate],
    n: int,
    pos_tiles: Sequence[tuple[int, int]],
    scores: NDArray[np.float32],
    p: SearchParams,
    scheduler: str | None,
) -> list[RankedCandidate]:
    """Re-rank the best ``n`` candidates with the second stage (:mod:`.rerank`)."""
    from dask.delayed import delayed

    path, grid, scale, bands = src.image, src.grid, src.scale, src.bands

    top = cands[:n]
    if not top:
        return cands
    rng = np.random.default_rng(p.seed)
    finite = np.flatnonzero(np.isfinite(scores).ravel())
    pick = rng.choice(finite, size=min(RERANK_BACKGROUND, finite.size), replace=False)
    background = [divmod(int(i), grid.n_cols) for i in np.sort(pick)]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(top):
        groups.setdefault((c.row // p.block_tiles, c.col // p.block_tiles), []).append(i)
    order = [idx for _, idx in sorted(groups.items())]
    task = delayed(rerank_block, pure=True)
    chunk = max(1, math.ceil(len(background) / 8))
    bg_chunks = [background[i : i + chunk] for i in range(0, len(background), chunk)]
    tasks = [task(path, grid, list(pos_tiles), scale, bands, True)]
    tasks += [task(path, grid, b, scale, bands) for b in bg_chunks]
    tasks += [
        task(path, grid, [(top[i].row, top[i].col) for i in idx], scale, bands) for idx in order
    ]
    out = _run_tasks(tasks, scheduler, None)
    pos, bg = out[0], np.vstack(out[1 : 1 + len(bg_chunks)])
    n_feat = pos.shape[1]
    feats = np.zeros((len(top), n_feat))
    for idx, rows in zip(order, out[1 + len(bg_chunks) :], strict=True):
        feats[idx] = rows
    ex = np.array(pos_tiles, dtype=np.int64).reshape(-1, 2)
    rc = np.array([(c.row, c.col) for c in top], dtype=np.int64)
    near = near_tiles(rc, ex, 2 * grid.cells_per_tile)
    s2 = cross_fitted_scores(pos, bg, feats, exclude=near, seed=p.seed)
    ranked = sorted(range(len(top)), key=lambda i: (-s2[i], i))
    logger.info("re-ranked the best %d candidates with the second stage", len(top))
    return reorder_candidates(
        [top[i] for i in ranked] + cands[n:], grid, [float(s2[i]) for i in ranked]
    )


def _with_match_peaks(
    cands: list[RankedCandidate], n_pool: int, match: NDArray[np.float32],
    scores: NDArray[np.float32], grid: TileGrid, limit: int | None = None,
) -> tuple[list[RankedCandidate], int]:  # fmt: skip
    """The candidate pool (the first ``n_pool`` of ``cands``) with the spectral match's own best
    tiles that overlap a pool tile without being one: other positions of the same places,
    which the fusion and :func:`.candidates.suppress_overlaps` choose between. Returns the
    candidates (the pool, the new positions, the rest) and the new pool size, at most ``limit``
    (the second stage's cap): the pool's last candidates make room for the new positions."""
    # tiles without a single matching pixel (most of an image: the match is zero) are no peak
    tiny = float(np.finfo(np.float32).tiny)
    top = math.ceil(n_pool * MATCH_PEAKS)
    peaks = non_max_suppression(match, top, grid.cells_per_tile - 1, min_score=tiny)
    pool = cands[:n_pool]
    near = overlapping(grid, [(c.row, c.col) for c in pool])
    have = {(c.row, c.col) for c in pool}
    # a new position is ranked by the first stage's score at its tile, like the pool
    extra = candidates_at(
        [
            (r, c, float(scores[r, c]))
            for r, c, _ in peaks
            if near[r, c] and (r, c) not in have and np.isfinite(scores[r, c])
        ],
        grid,
    )
    keep = n_pool
    if limit is not None:
        extra = extra[:limit]
        keep = max(0, min(n_pool, limit - len(extra)))
    return pool[:keep] + extra + pool[keep:] + cands[n_pool:], keep + len(extra)


def run_search(
    image: str | Path,
    examples: Sequence[tuple[float, float]],
    *,
    dem: str | Path | None = None,
    params: SearchParams | None = None,
    scheduler: str | None = None,
    negatives: F64 | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> SearchResult:
    """Search ``image`` for tiles that look like the ``examples`` (lon, lat points).

    ``negatives`` adds feature rows of known non-sites (e.g. candidates rejected in triage) to
    the random background tiles. ``scheduler`` is a dask.distributed address
    (``tcp://host:port``) or None for local threads.
    """
    from dask.delayed import delayed

    p = params or SearchParams()
    path = str(image)
    dem_path = str(dem) if dem else None
    t0 = time.perf_counter()
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise ImageryError(f"cannot open image {path}: {gdal_text(exc)}; check the path") from exc
    with ds:
        bands = p.bands or tuple(range(1, min(ds.count, 4) + 1))
        if max(bands) > ds.count:
            raise InputError(f"{path} has {ds.count} bands; cannot use bands {bands}")
        p = p.for_image(ds)
        cfg = p.features
        if p.tile > min(ds.width, ds.height):
            raise InputError(
                f"the tile ({p.tile} px) is larger than the image ({ds.width} x {ds.height} px); "
                "give a smaller --tile or search a larger image"
            )
        grid = cfg.grid(ds)
        scale = estimate_scale(ds, bands)
        if p.backbone:
            emb = prepare_embedding(
                p.backbone, ds, grid, bands, scale, layer=p.backbone_layer,
                channels=p.backbone_bands, dims=p.embed_dims, seed=p.seed,
            )  # fmt: skip
            cfg = replace(cfg, embedding=emb)
    if dem_path:
        try:
            rasterio.open(dem_path).close()
        except rasterio.errors.RasterioIOError as exc:
            raise ImageryError(
                f"cannot open DEM {dem_path}: {gdal_text(exc)}; check the path"
            ) from exc
    pos_tiles = example_tiles(grid, examples)
    if p.spectral:
        with rasterio.open(path) as ds:
            spec = prepare_spectral(
                ds, bands, example_pixels(grid, examples), grid.tile, seed=p.seed
            )
        cfg = replace(cfg, spectral=spec)
    names = cfg.names(len(bands), dem_path is not None)
    src = Source(path, grid, cfg, scale, tuple(bands), dem_path)
    pos = _tiles_features_blocked(src, pos_tiles, p.block_tiles)
    neg = _negative_features(src, pos_tiles, p.negatives, p.seed, scheduler)
    neg = neg[~np.isnan(neg).any(axis=1)]
    if negatives is not None and len(negatives):
        neg = np.vstack([neg, negatives])
    model = fit_model(
        pos, neg, names, method=p.method, hard_rounds=p.hard_rounds, clip_margin=p.clip_margin
    )
    marks = {"model": time.perf_counter()}
    blocks = grid.blocks(p.block_tiles)
    task = delayed(score_block, pure=True)
    # the arguments every task shares go into the graph once: dask would otherwise walk the
    # model's arrays and the dataclasses again for every block (seconds on a large AOI)
    d_src, d_model = delayed(src, pure=True), delayed(model.to_dict(), pure=True)
    tasks = [task(d_src, b, d_model) for b in blocks]
    logger.info("scoring %d tiles in %d blocks", grid.n_rows * grid.n_cols, len(blocks))
    results = _run_tasks(tasks, scheduler, progress)
    scores = np.full(grid.shape, np.nan, dtype=np.float32)
    match = np.full(grid.shape, np.nan, dtype=np.float32) if cfg.spectral is not None else None
    area = 0.0
    for block, sc, a, m in results:
        where = np.s_[
            block.row0 : block.row0 + block.n_rows, block.col0 : block.col0 + block.n_cols
        ]
        scores[where] = sc
        if match is not None and m is not None:
            match[where] = m
        area += a
    if not np.isfinite(scores).any():
        raise AnalysisError(f"{path} has no valid pixels to search; check its nodata value")
    marks["first_stage"] = time.perf_counter()
    tile_km2 = grid.pixel_area_m2() * grid.tile * grid.tile / 1e6
    n_share = min(math.ceil(area * p.rerank / tile_km2), RERANK_MAX)
    n_rerank = max(n_share, p.top) if p.rerank > 0 else 0
    n_fused = max(n_rerank, p.top)
    # with the match, up to ``top`` more: the new positions may displace pool candidates
    cands = make_candidates(scores, grid, top=n_fused + (p.top if match is not None else 0))
    if match is not None:
        limit = max(RERANK_MAX, p.top) if n_rerank else None
        cands, n_fused = _with_match_peaks(cands, n_fused, match, scores, grid, limit)
        n_rerank = n_fused if n_rerank else 0
    marks["candidates"] = time.perf_counter()
    if n_rerank:
        cands = _rerank(src, cands, n_rerank, pos_tiles, scores, p, scheduler)
    if match is not None:
        # the spectral match ranks the same candidates on its own: the two orders are fused,
        # and of two overlapping positions of one place the better fused one is kept
        order, fused = fuse_ranks([float(match[c.row, c.col]) for c in cands[:n_fused]])
        ordered = [cands[i] for i in order] + cands[n_fused:]
        kept = suppress_overlaps(ordered, grid)
        cands = reorder_candidates(
            [ordered[i] for i in kept],
            grid,
            [fused[i] for i in kept if i < len(fused)],
            keep_stage1=n_rerank > 0,
        )
    marks["second_stage"] = time.perf_counter()
    cands = cands[: p.top]
    cand_feats = compute_tile_features(src, [(c.row, c.col) for c in cands])
    seconds = time.perf_counter() - t0
    marks["finish"] = t0 + seconds
    ends = list(marks.values())
    timings = {k: e - b for k, b, e in zip(marks, [t0, *ends[:-1]], ends, strict=True)}
    result = SearchResult(
        run_id=run_id or new_run_id(),
        image=path,
        dem=dem_path,
        params=p,
        grid=grid,
        scale=scale,
        bands=tuple(bands),
        model=model,
        scores=scores,
        candidates=cands,
        candidate_features=cand_feats,
        positives=pos,
        negatives=neg,
        examples=[(float(a), float(b)) for a, b in examples],
        area_km2=area,
        seconds=seconds,
        timings=timings,
        embedding=cfg.embedding,
        spectral=cfg.spectral,
    )
    logger.info(
        "searched %.1f km2 in %.1f s (%.1f km2/s), %d candidates",
        area, seconds, result.km2_per_s, len(cands),
    )  # fmt: skip
    return result
