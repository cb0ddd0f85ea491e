"""Training the Siamese U-Net change model on labelled pairs, and leave-cities-out cross-validation.

Training draws random crops (half of them centred on a changed pixel, as change is rare), flips,
rotates and swaps the dates, and minimises BCE + soft Dice with AdamW under a cosine learning
rate schedule whose progress is the share of the steps done; the wall clock enters it only on a
machine too slow to finish the steps within ``minutes`` (see :func:`_schedule`), so that such a
run still ends with a small learning rate while any other run is the same on a busy machine as
on an idle one. The model keeps an exponential moving average of the weights, and predicts with
test-time augmentation (the 8 flips and rotations).

A caution on the figures below (session 25): sessions 19-24 compared their options with session
18's 0.442 / 0.386 (seeds 0 / 10). The session-18 code, run today, trains bit-identical weights
to today's and scores 0.390 / 0.397 with the defaults: session 18's figures came from that
session's environment, rebuilt afterwards. Against 0.390 / 0.397, hard-negative crops (0.399 /
0.427), weight decay 1e-3 (0.412 / 0.406), no dropout (0.414 / 0.387) and 1,000 steps (0.418 /
0.393) lie 0.01-0.02 above the defaults on average, the narrower network (0.435 / 0.402, whose
seed-0 fold 4 died before retries existed) 0.025, all inside one seed's spread (0.386-0.442
over six seeds in session 18); the others score at or below them. With fewer training cities the
defaults score less: 2 folds (5 training cities each) 0.349 / 0.367 against 0.390 / 0.397 with
5 folds (8 each) and 0.405 (seed 0; P 0.38, R 0.44) with 10 folds (9 each), about 0.015 a city.

Measured in the OSCD 5-fold leave-cities-out cross-validation (600 steps, 1 thread; the defaults
scored pooled F1 0.377, folds 0.29 / 0.44 / 0.43 / 0.52 / 0.10, and 0.356, folds 0.36 / 0.38 /
0.44 / 0.46 / 0.10, in two runs whose initial weights were not yet fixed by the seed; single
cities swing widely with the initialisation, bordeaux 0.07 to 0.30; with seeded initial weights
the run is reproducible: 0.325, folds 0.22 / 0.47 / 0.38 / 0.51 / 0.08), none of these beat the
defaults beyond that spread, so they stay options, off:

* the z-scores joined by each date's NDVI, NDBI, MNDWI and bare-soil index, times 3
  (``normalisation="zscore_indices"``; session 18, now the default): pooled F1 0.442 / 0.386 /
  0.393 / 0.400 / 0.397 / 0.400 (seeds 0 / 10 / 20 / 30 / 40 / 50; mean 0.403, R 0.44-0.49)
  against 0.404 / 0.380 / 0.383 / 0.393 / 0.386 / 0.383 (mean 0.388, R 0.42-0.47) for the
  z-scores alone: higher with every seed, by 0.006 to 0.038. Over the six seeds fold 0 gained
  most (bordeaux F1 0.07 -> 0.17, its false-positive pixels 16,000 -> 9,500 a run; abudhabi
  0.36 -> 0.42) and fold 4 lost (bercy 0.30 -> 0.26, saclay_e 0.14 -> 0.13, whose harvested
  fields gave 27,000 false-positive pixels a run against 21,000): the indices tell built-up from
  bare soil better than the z-scores, but not a harvest from a building site. Not adopted (seed
  0): the decoder fed the signed difference of the features (AFTER minus BEFORE, the dates never
  swapped), so that it could tell the direction of a change: fold 0 scored abudhabi 0.24 and
  bordeaux 0.05 against 0.40 and 0.07. With the indices, 256 px crops (batch 2) scored 0.393 /
  0.386 (seeds 0 / 10) against 0.442 / 0.386 with 192 px.
* 192 px crops in batches of 3 (the same pixels a step as 12 of 96 px) with four levels
  (``widths=(16, 32, 64, 128)``; session 17, now the default): pooled F1 0.404 / 0.380 / 0.383
  (seeds 0 / 10 / 20; P 0.35 / 0.33 / 0.33, R 0.47 / 0.45 / 0.45) against 0.353 / 0.380 / 0.345
  (P 0.28 / 0.30 / 0.27) for 96 px crops with three levels: +0.03 on average, never lower, and
  higher precision in every run (seed 20: 101,000 false-positive pixels against 150,000). Each
  alone was not enough: 192 px crops with three levels 0.380 (seed 0), four levels on 96 px
  crops 0.336 / 0.337 (seeds 0 / 10). Larger still did not help: 256 px crops (batch 2) with
  four levels 0.403 / 0.365 (seeds 0 / 10), with five levels (up to 256 channels) 0.360 (seed
  0). Fold 4 (bercy and saclay_e) rose from 0.09-0.12 to 0.14-0.16 (0.20-0.25 with 256 px
  crops). On top of them (seed 0, against 0.404): radiometric jitter 0.1 scored 0.383, 1,200
  steps 0.370. Narrower, with the indices (``widths=(8, 16, 32, 64)``, session 20): 0.435 /
  0.402 (seeds 0 / 10) against 0.442 / 0.386, but seed 0's fold 4 ended with a dead network (F1
  0 on bercy and saclay_e, whose false positives then left the pool): not adopted.
* the output bias started at the log-odds of the training crops' changed share (session 16,
  now the default, ``start_at_prior``): pooled F1 0.353 (seed 0) and 0.380 (seed 10), inside
  the spread, but no run dies any more: started at 0, fold 3 with ``change_fraction=0.2`` (and
  with 192 px crops) ended with the change-voting channels of the last block dead, no
  probability above 0.48 anywhere and F1 0 on beirut and paris; started at the prior, 0.54 and
  0.13. The trained model's recall on its own training crops is recorded
  (``training_crop_recall``), and at 0 the network is trained again from another seed
  (:attr:`TrainConfig.retries`). Not adopted (seed 0): the decoder fed the mean
  of both dates' features beside their difference 0.344, LeakyReLU 0.336, dropout 0.3 with
  weight decay 0.01 0.317, a 1 px band along label edges left out of the loss 0.314. Started at
  the prior, ``change_fraction`` 0.2 scored 0.380 / 0.370 (seeds 0 / 10) and 0.3 scored 0.374
  (seed 0), against 0.353 / 0.380 for 0.5: inside the spread, so 0.5 stays.
* the OSCD pairs co-registered on loading (session 15, now the default of ``iter_oscd``): the
  defaults scored pooled F1 0.364 (folds 0.35 / 0.44 / 0.38 / 0.46 / 0.10) and, seed 10, 0.351,
  against 0.325 for the seeded run without; inside the spread of the seeds. Four levels
  (``widths=(16, 32, 64, 128)``, the original FC-Siam-diff depth): 0.358 without co-registration,
  0.336 and 0.337 (seeds 0 and 10) with it.
* a seed ensemble (``bench/change_sweep.py``, the cities stored at 2-DN steps, 1 thread): three
  seeds scored pooled F1 0.361 / 0.329 / 0.343 alone, and the mean of their probabilities 0.351
  (two of them 0.360), inside the spread of the seeds themselves. The seeds' spread (0.03
  pooled, bordeaux 0.07-0.27) is also what the 2-DN rounding alone moves a run by.
* radiometric jitter 0.1 (all 5 folds): pooled F1 0.378 (P 0.294, R 0.531), folds 0.38 / 0.39 /
  0.42 / 0.52 / 0.08. It removed most false positives on bordeaux's fields (precision 0.04 ->
  0.35) but not saclay_e's (0.04; 45,000 false-positive pixels, a third of the pooled ones), and
  lost on fold 1. Jitter 0.2, folds 4 and 0 only: saclay_e precision 0.045, abudhabi F1 0.33.
* the CVA pair channel (``prior="cva"``, folds 0-2): see :attr:`TrainConfig.prior`.
* hard-negative crops (``hard_fraction=0.25``, fold 0): F1 0.26 against 0.27 for a rerun of the
  defaults; bordeaux precision stayed at 0.05.
* post-processing of the probability maps (the jitter run's maps, all 10 cities): thresholds 0.3
  to 0.8 moved pooled F1 by at most 0.01 (the probabilities are nearly binary: the network is
  confidently wrong on the fields); opening with a 1 px cross and minimum mapping units of 4-16 px
  changed it by under 0.005, Gaussian smoothing of the probability lowered it (up to -0.008);
  averaging with, or multiplying by, a logistic of the unsupervised CVA robust z-score gave at
  best 0.396 over 20 variants picked on those same test cities, inside the spread. The NDVI change
  does not separate the fields' false positives from true ones (saclay_e's are harvests, median
  dNDVI -0.24; true changes range from -0.4 to +0.2).

This module imports torch at import time; use it through :mod:`sitewatch.analysis.models`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.nn import functional as nnf

from ...errors import InputError
from ..change import SPECTRAL_INDICES, indices_for
from ..changeeval import KindTally, LabelledPair, Scores
from . import CITY_WEIGHTINGS
from .changemodel import (
    NORMALISATIONS,
    PRIORS,
    ChangeModel,
    ModelMeta,
    model_inputs,
    pair_prior,
    resolve_device,
)

__all__ = ["TrainConfig", "calibrate_threshold", "cross_validate", "train_change_model"]

logger = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Training stops at ``steps``, ``epochs`` or after ``minutes``, whichever
    is first (an epoch is as many crops as cover the training pixels once)."""

    epochs: float | None = None
    minutes: float | None = 15.0
    steps: int | None = 600
    """A fixed number of optimiser steps (reproducible, unlike a wall-clock budget): about 3
    minutes on one core of the 2-core reference machine (3.3 steps/s with 192 px crops, batches
    of 3 and four levels, whatever the number of cities); ``minutes`` stays as a cap for busy
    machines. In the OSCD cross-validation 1,200 steps scored no better: pooled F1 0.346 against
    0.377 with 96 px crops and three levels, 0.370 against 0.404 with the defaults (seed 0), and
    with the index inputs 1,000 steps scored 0.418 / 0.393 against 0.442 / 0.386 (seeds 0 / 10;
    9-10 minutes a fold on one busy core); fewer did no better either: 400 steps 0.386 / 0.396
    (session 22)."""
    crop: int = 192
    """Crop side in pixels (clipped to the smallest training image). 192 px with four levels
    (the defaults since session 17) scored pooled F1 0.389 on average over three seeds in the
    OSCD cross-validation against 0.359 for 96 px crops with three levels; see the module."""
    batch: int = 3
    lr: float = 2e-3
    weight_decay: float = 1e-4
    """AdamW weight decay. 1e-3 scored pooled F1 0.412 / 0.406 in the OSCD cross-validation
    against 0.442 / 0.386 (seeds 0 / 10; session 22), the same mean: not adopted."""
    change_fraction: float = 0.5
    hard_fraction: float = 0.0
    """Share of crops centred on a hard negative: an unchanged pixel that the unsupervised CVA
    calls changed (robust z-score of the CVA magnitude above 5, see
    :func:`~.changemodel.pair_prior`), such as fields between seasons; the rest are uniform. 0.25
    did not help in the OSCD cross-validation (fold 0: F1 0.26 against 0.27), nor with the index
    inputs (session 22): pooled F1 0.399 / 0.427 (seeds 0 / 10) against 0.442 / 0.386, the same
    mean; saclay_e's harvested fields still gave 20,000 / 19,500 false-positive pixels (27,000 a
    run on average over six seeds with the defaults)."""
    city_weighting: str = "area"
    """How crops share the training cities: ``area``, in proportion to each city's valid pixels,
    or ``equal``, the same number of crops from each city, so that a small city's kinds of
    change and of land weigh as much as a large one's (the OSCD cities range from 142,000
    pixels, bercy, to 1.26 million, beirut). ``equal`` scored pooled F1 0.382 / 0.390 in the
    OSCD cross-validation against 0.442 / 0.386 (seeds 0 / 10; session 23; P 0.34 / 0.34, R
    0.44 / 0.45): bordeaux rose (0.16 / 0.23) but saclay_e's fields gave 24,000 / 28,000
    false-positive pixels: not adopted."""
    zoom: float = 0.0
    """Scale augmentation: each crop is cut from a window whose side is the crop's times a
    factor drawn log-uniformly between ``1 / (1 + zoom)`` and ``1 + zoom``, and resampled to the
    crop (bilinear; labels nearest), so that buildings and plots of other sizes than the training
    cities' are seen; 0: off. 0.5 scored pooled F1 0.379 / 0.383 in the OSCD cross-validation
    against 0.442 / 0.386 (seeds 0 / 10; session 23; P 0.33 / 0.32, R 0.45 / 0.48): not
    adopted."""
    dice: bool = True
    """Add the soft Dice loss of the changed pixels to the binary cross-entropy; off, the
    cross-entropy alone (probabilities less pushed to 0 and 1). Off scored pooled F1 0.334 /
    0.355 in the OSCD cross-validation against 0.442 / 0.386 (seeds 0 / 10; session 23): recall
    fell to 0.28 / 0.35 (0.44-0.49 with the Dice term over six seeds) while precision stayed at
    0.40 / 0.36, and saclay_e's fields still gave 11,000 / 18,000 false-positive pixels: the Dice
    term is not what marks the fields."""
    widths: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.1
    """Dropout before the bottleneck. Off (0) scored pooled F1 0.414 / 0.387 in the OSCD
    cross-validation against 0.442 / 0.386 (seeds 0 / 10; session 21): not adopted."""
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    """Where to train (``cpu``, ``cuda``, ``cuda:N``); the trained model stays there, and
    :meth:`ChangeModel.save` writes CPU weights either way. Results on a GPU match the CPU's
    only statistically (other kernels, other rounding)."""
    normalisation: str = "zscore_indices"
    """Network inputs, one of :data:`~.changemodel.NORMALISATIONS`. ``zscore_indices`` (the
    default since session 18) scored pooled F1 0.403 on average over six seeds in the OSCD
    cross-validation against 0.388 for ``per_image_zscore``, higher with every seed; see the
    module."""
    prior: str = "none"
    """Pair channel, one of :data:`~.changemodel.PRIORS` (see :func:`~.changemodel.pair_prior`).
    Off by default: in the OSCD cross-validation (600 steps, folds 0-2 of 5) the ``cva`` channel
    made the network conservative, fold F1 0.24 / 0.38 / 0.39 at threshold 0.5 (0.28 / 0.36 / 0.42
    at 0.3) against 0.27-0.29 / 0.44 / 0.43 without it; it cut bordeaux's false positives on fields
    (precision 0.04 -> 0.19) but halved abudhabi's recall (0.33 -> 0.15)."""
    jitter: float = 0.0
    """Radiometric augmentation: each crop's channels get a random gain ``1 + N(0, jitter)`` and
    offset ``N(0, jitter)`` per date, so small calibration differences are not taken for change.
    0.1 scored the same as 0 in the OSCD cross-validation with 96 px crops and three levels
    (pooled F1 0.378), and lower with the defaults (0.383 against 0.404, seed 0; see the
    module)."""
    start_at_prior: bool = True
    """Start the output bias at the log-odds of the changed share of the training crops (see
    :meth:`~._network.SiamDiffUNet.start_at_prior`) rather than at 0, so that the network's
    change-voting channels do not die in the first steps (see the module)."""
    ema: float = 0.99
    """Decay of an exponential moving average of the weights, which becomes the model (0: off).
    0.995 (an average over about twice as many steps) scored pooled F1 0.390 in the OSCD
    cross-validation against 0.442 (seed 0; session 21): not adopted."""
    tta: bool = True
    """Test-time augmentation in the trained model (see :attr:`ModelMeta.tta`)."""
    retries: int = 1
    """Times a dead network (none of its training crops' changed pixels marked as change) is
    trained again, from the seed plus :data:`RETRY_SEED_STEP` each time; the tries share the
    ``minutes`` budget (a retry gets what is left, none when nothing is). In the OSCD
    cross-validation no network of the defaults has died since :attr:`start_at_prior` (session
    16); one of the ten folds with ``widths=(8, 16, 32, 64)`` did (session 20)."""
    calibrate: bool = False
    """Set the model's threshold to the one with the best pooled F1 on the training pairs
    (single-pass probabilities, even with ``tta``); otherwise 0.5. Off by default: the network
    memorises its training labels, so that threshold came out too high for unseen cities in the
    OSCD cross-validation (0.56-0.88 against a best of about 0.3-0.5), and 0.5 scored higher."""

    def __post_init__(self) -> None:
        if self.epochs is None and self.minutes is None and self.steps is None:
            raise InputError("training needs a limit: steps, epochs or minutes")
        if any(v is not None and v <= 0 for v in (self.epochs, self.minutes, self.steps)):
            raise InputError("steps, epochs and minutes must be > 0")
        if self.normalisation not in NORMALISATIONS:
            raise InputError(
                f"unknown input normalisation {self.normalisation!r} "
                f"(known: {', '.join(NORMALISATIONS)})"
            )
        if self.prior not in PRIORS:
            raise InputError(f"unknown prior {self.prior!r} (known: {', '.join(PRIORS)})")
        if not 0 <= self.jitter < 1:
            raise InputError("jitter must be in [0, 1)")
        if not (math.isfinite(self.zoom) and 0 <= self.zoom <= 1):
            raise InputError(f"zoom must be in [0, 1], got {self.zoom}")
        if not 0 <= self.ema < 1:
            raise InputError("ema must be in [0, 1)")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if len(self.widths) < 2 or any(int(w) != w or w < 1 for w in self.widths):
            raise InputError(
                f"widths must be two or more positive channel counts (one per level, the last "
                f"the bottleneck), such as 16,32,64,128; got {self.widths}"
            )
        if self.crop < 16:
            raise InputError(f"crop must be at least 16 px, got {self.crop}")
        if self.batch < 1:
            raise InputError(f"batch must be at least 1 crop, got {self.batch}")
        if not 0 <= self.change_fraction <= 1:
            raise InputError(f"change_fraction must be in [0, 1], got {self.change_fraction}")
        if not 0 <= self.hard_fraction <= 1 - self.change_fraction:
            raise InputError("hard_fraction must be in [0, 1 - change_fraction]")
        if self.city_weighting not in CITY_WEIGHTINGS:
            raise InputError(
                f"unknown city weighting {self.city_weighting!r} "
                f"(known: {', '.join(CITY_WEIGHTINGS)})"
            )
        if self.threads < 1:
            raise InputError(f"threads must be at least 1, got {self.threads}")
        if self.retries < 0:
            raise InputError(f"retries must be 0 or more, got {self.retries}")
        if not isinstance(self.device, str) or not self.device:
            raise InputError("device must be a name such as cpu, cuda or cuda:0")
        resolve_device(self.device)  # an absent GPU is refused before any data is read


@dataclass
class _City:
    before: NDArray[np.float32]
    after: NDArray[np.float32]
    label: NDArray[np.float32]
    valid: NDArray[np.float32]
    changed: NDArray[np.intp]  # flat indices of changed pixels
    pair: NDArray[np.float32]  # (pair channels, y, x); no channels without a prior
    hard: NDArray[np.intp]  # flat indices of hard negatives (unchanged, CVA above its threshold)


def _common_bands(pairs: Sequence[LabelledPair]) -> tuple[str, ...]:
    bands = list(pairs[0].before.bands)
    for p in pairs:
        have = {b.lower() for b in p.before.bands} & {b.lower() for b in p.after.bands}
        bands = [b for b in bands if b.lower() in have]
    if not bands:
        raise InputError("the training pairs have no band in common")
    return tuple(bands)


def _prepare(
    pairs: Sequence[LabelledPair],
    bands: tuple[str, ...],
    normalisation: str,
    clip: float,
    prior: str = "none",
    hard: bool = False,
) -> list[_City]:
    cities = []
    for p in pairs:
        idx_b = [[x.lower() for x in p.before.bands].index(b.lower()) for b in bands]
        idx_a = [[x.lower() for x in p.after.bands].index(b.lower()) for b in bands]
        before = np.asarray(p.before.data[idx_b], dtype=np.float32)
        after = np.asarray(p.after.data[idx_a], dtype=np.float32)
        if p.label.shape != before.shape[1:] or before.shape != after.shape:
            raise InputError(
                f"{p.name}: images {before.shape[1:]} / {after.shape[1:]} and label "
                f"{p.label.shape} differ in size"
            )
        valid = np.isfinite(before).all(axis=0) & np.isfinite(after).all(axis=0)
        if not valid.any():
            raise InputError(f"{p.name}: no pixel has data in both images")
        label = p.label & valid
        a = model_inputs(before, normalisation, clip, bands)
        b = model_inputs(after, normalisation, clip, bands)
        valid = np.asarray(valid, dtype=bool)
        pair = pair_prior(a, b, valid, prior, len(bands))
        hard_idx = np.zeros(0, dtype=np.intp)
        if hard:
            cva = pair if prior == "cva" else pair_prior(a, b, valid, "cva", len(bands))
            assert cva is not None
            hard_idx = np.flatnonzero((cva[0] > 1.0) & valid & ~label)
        cities.append(
            _City(
                a,
                b,
                np.asarray(label, dtype=np.float32),
                np.asarray(valid, dtype=np.float32),
                np.flatnonzero(label),
                np.zeros((0, *label.shape), dtype=np.float32) if pair is None else pair,
                hard_idx,
            )
        )
    return cities


def _resample(arr: NDArray[np.float32], side: int, order: int) -> NDArray[np.float32]:
    """(C, k, k) ``arr`` resampled to (C, side, side): bilinear (order 1) or nearest (0)."""
    from scipy import ndimage

    if arr.shape[0] == 0:
        return np.zeros((0, side, side), dtype=np.float32)
    f = side / arr.shape[1]
    out: NDArray[np.float32] = ndimage.zoom(
        arr, (1, f, f), order=order, grid_mode=True, mode="nearest"
    ).astype(np.float32)
    return out


class _Sampler:
    """Random augmented crops: (a, b, label, valid, pair) tensors of shape (N, C, crop, crop)."""

    def __init__(
        self,
        cities: list[_City],
        crop: int,
        change_fraction: float,
        seed: int,
        jitter: float = 0.0,
        hard_fraction: float = 0.0,
        city_weighting: str = "area",
        zoom: float = 0.0,
    ) -> None:
        self.cities = cities
        self.crop = crop
        self.change_fraction = change_fraction
        self.hard_fraction = hard_fraction
        self.jitter = jitter
        self.zoom = zoom
        self.rng = np.random.default_rng(seed)
        sizes = np.array([c.valid.sum() for c in cities], dtype=np.float64)
        if city_weighting == "equal":
            sizes = (sizes > 0).astype(np.float64)
        self.weights = sizes / sizes.sum()

    def _one(self) -> tuple[NDArray[np.float32], ...]:
        rng, out_k = self.rng, self.crop
        city = self.cities[int(rng.choice(len(self.cities), p=self.weights))]
        h, w = city.label.shape
        k = out_k
        if self.zoom > 0:  # cut a larger or smaller window, resampled to the crop size below
            span = math.log1p(self.zoom)
            k = int(np.clip(round(out_k * math.exp(rng.uniform(-span, span))), 8, min(h, w)))
        centre = None
        if city.changed.size and rng.random() < self.change_fraction:
            centre = city.changed
        elif (
            self.hard_fraction > 0
            and city.hard.size
            and rng.random() < self.hard_fraction / (1.0 - self.change_fraction)
        ):
            centre = city.hard
        if centre is not None:
            cy, cx = divmod(int(centre[rng.integers(centre.size)]), w)
            y0 = int(np.clip(cy - rng.integers(k), 0, h - k))
            x0 = int(np.clip(cx - rng.integers(k), 0, w - k))
        else:
            y0, x0 = int(rng.integers(h - k + 1)), int(rng.integers(w - k + 1))
        win = (slice(None), slice(y0, y0 + k), slice(x0, x0 + k))
        a, b = city.before[win], city.after[win]
        lab, val = (
            city.label[None, y0 : y0 + k, x0 : x0 + k],
            city.valid[None, y0 : y0 + k, x0 : x0 + k],
        )
        pair = city.pair[win]
        if k != out_k:
            a, b, pair = (_resample(x, out_k, 1) for x in (a, b, pair))
            lab, val = (_resample(x, out_k, 0) for x in (lab, val))
        if self.jitter > 0:
            gain = 1 + self.jitter * rng.standard_normal((2, a.shape[0], 1, 1))
            offset = self.jitter * rng.standard_normal((2, a.shape[0], 1, 1))
            a = (a * gain[0] + offset[0]).astype(np.float32)
            b = (b * gain[1] + offset[1]).astype(np.float32)
        if rng.random() < 0.5:
            a, b = b, a
        rot = int(rng.integers(4))
        flip = bool(rng.random() < 0.5)
        out = []
        for arr in (a, b, lab, val, pair):
            arr = np.rot90(arr, rot, axes=(1, 2))
            out.append(np.ascontiguousarray(arr[:, :, ::-1] if flip else arr))
        return tuple(out)

    def batch(self, n: int) -> tuple[Tensor, ...]:
        items = [self._one() for _ in range(n)]
        return tuple(torch.from_numpy(np.stack(col)) for col in zip(*items, strict=True))


def _changed_share(sampler: _Sampler, batch: int, batches: int = 32) -> float:
    """The share of changed pixels among the valid pixels of ``batches`` batches of crops."""
    changed = valid = 0.0
    for _ in range(batches):
        _, _, lab, val, _ = sampler.batch(batch)
        changed += float((lab * val).sum())
        valid += float(val.sum())
    return changed / valid if valid else 0.0


def _crop_recall(
    net: torch.nn.Module,
    cities: list[_City],
    crop: int,
    batch: int,
    seed: int,
    threshold: float,
    device: torch.device,
    batches: int = 2,
) -> float | None:
    """The share of the changed pixels in training crops centred on change that the network
    marks as changed (one pass, no test-time augmentation); None without changed pixels."""
    if not any(c.changed.size for c in cities):
        return None
    sampler = _Sampler(cities, crop, 1.0, seed)
    hit = changed = 0.0
    with torch.no_grad():
        for _ in range(batches):
            a, b, lab, val, pair = (t.to(device) for t in sampler.batch(batch))
            prob = torch.sigmoid(net(a, b, pair if pair.shape[1] else None))
            on = lab * val
            hit += float(((prob >= threshold) * on).sum())
            changed += float(on.sum())
    return hit / changed if changed else None


def _loss(logits: Tensor, label: Tensor, valid: Tensor, dice: bool = True) -> Tensor:
    n_valid = valid.sum().clamp(min=1.0)
    bce = (
        nnf.binary_cross_entropy_with_logits(logits, label, reduction="none") * valid
    ).sum() / n_valid
    if not dice:
        return bce
    p = torch.sigmoid(logits) * valid
    return bce + 1.0 - (2.0 * (p * label).sum() + 1.0) / (p.sum() + label.sum() + 1.0)


def _schedule(step: int, total_steps: int | None, elapsed: float, budget_s: float | None) -> float:
    """Progress (0 to 1) of the cosine learning-rate schedule after ``step`` steps and
    ``elapsed`` seconds.

    With a step limit it is the share of the steps done, whatever the clock says, so that a
    seeded run trains the same weights on a busy machine as on an idle one. The elapsed share of
    the ``minutes`` budget takes over only once half the budget is spent with the steps behind
    it: a machine too slow to finish the steps in time, whose run the budget will stop, so it
    still ends at a small learning rate. Without a step limit it is the elapsed share.

    Until session 25 the progress was always the larger of the two shares. On a machine loaded
    beyond its cores, a slow stretch early in a run made the clock's share the larger for a
    while: session 24's cross-validation, run beside a test suite, scored bercy / saclay_e F1
    0.351 / 0.123 in fold 4 against 0.300 / 0.154 for the same seed and code on a quieter
    machine (folds 0-3 identical), and its pooled F1 0.385 against 0.390."""
    by_time = elapsed / budget_s if budget_s else 0.0
    if not total_steps:
        return min(by_time, 1.0)
    by_steps = step / total_steps
    return min(max(by_steps, by_time) if by_time >= 0.5 else by_steps, 1.0)


RETRY_SEED_STEP = 1000
"""A retry after a dead network trains from the seed plus this (see :attr:`TrainConfig.retries`)."""


def train_change_model(
    pairs: Sequence[LabelledPair],
    config: TrainConfig | None = None,
    *,
    progress: Progress | None = None,
) -> ChangeModel:
    """Train a change model on labelled pairs (images with the same bands; label True = change).

    A network that ends marking none of its own training crops' changed pixels (dead
    change-voting channels; see :mod:`._network`) is trained again from another seed, up to
    :attr:`TrainConfig.retries` times; the training record lists the seeds that died
    (``dead_seeds``)."""
    config = config or TrainConfig()
    if not pairs:
        raise InputError("no labelled pairs to train on")
    bands = _common_bands(pairs)
    meta = ModelMeta(
        bands=bands,
        widths=config.widths,
        dropout=config.dropout,
        normalisation=config.normalisation,
        tta=config.tta,
        prior=config.prior,
    )
    if meta.normalisation == "zscore_indices" and not indices_for(bands):
        logger.warning(
            "bands %s allow none of the input indices %s (they need red, nir, green and swir1 "
            "bands): the network sees the z-scores alone",
            ",".join(bands), ",".join(SPECTRAL_INDICES),
        )  # fmt: skip
    cities = _prepare(
        pairs, bands, meta.normalisation, meta.clip, meta.prior, hard=config.hard_fraction > 0
    )
    dead: list[int] = []
    started = time.monotonic()
    while True:  # a retry reuses the prepared inputs: only the network starts again
        model = _train_once(pairs, cities, meta, config, progress)
        if model.meta.training.get("training_crop_recall") != 0.0:
            break
        budget = config.minutes
        left = None if budget is None else budget - (time.monotonic() - started) / 60.0
        if len(dead) == config.retries or (left is not None and left <= 0):
            logger.warning(
                "the trained model marks none of the changed pixels of its own training crops as "
                "change: training failed (a network that can only vote against change%s%s); "
                "train again with another seed",
                f", from seeds {', '.join(map(str, [*dead, config.seed]))}" if dead else "",
                "; no time was left of the minutes for another try"
                if len(dead) < config.retries else "",
            )  # fmt: skip
            break
        dead.append(config.seed)
        # the tries share the wall-clock budget: train-oscd keeps to its minutes
        config = replace(config, seed=config.seed + RETRY_SEED_STEP, minutes=left)
        logger.warning(
            "the network trained from seed %d marks none of the changed pixels of its own "
            "training crops as change (it can only vote against change): training again from "
            "seed %d", dead[-1], config.seed,
        )  # fmt: skip
    if dead:
        model.meta = replace(model.meta, training={**model.meta.training, "dead_seeds": dead})
    return model


def _train_once(
    pairs: Sequence[LabelledPair],
    cities: list[_City],
    meta: ModelMeta,
    config: TrainConfig,
    progress: Progress | None,
) -> ChangeModel:
    bands = meta.bands
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # before the network is built: its initial weights too
    model = ChangeModel(meta).to(device)
    net = model.net
    m = net.multiple
    smallest = min(min(c.label.shape) for c in cities)
    crop = min(config.crop, smallest) // m * m
    if crop < 2 * m:
        raise InputError(
            f"the smallest training image is {smallest} px across; training needs at least "
            f"{2 * m} px (crops of {config.crop} px are used when the images allow)"
        )
    n_pix = float(sum(c.valid.sum() for c in cities))
    steps_per_epoch = max(1, math.ceil(n_pix / (crop * crop) / config.batch))
    limits = [config.steps] if config.steps is not None else []
    if config.epochs is not None:
        limits.append(math.ceil(config.epochs * steps_per_epoch))
    total_steps = min(limits) if limits else None
    budget_s = config.minutes * 60.0 if config.minutes is not None else None

    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    sampler_for = partial(
        _Sampler,
        cities,
        crop,
        config.change_fraction,
        hard_fraction=config.hard_fraction,
        city_weighting=config.city_weighting,
        zoom=config.zoom,
    )
    sampler = sampler_for(config.seed, config.jitter)
    share = None
    if config.start_at_prior:
        share = _changed_share(
            sampler_for(config.seed + 1),
            config.batch,
        )
        net.start_at_prior(share)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    params = [p for p in net.parameters() if p.requires_grad]
    shadow = [p.detach().clone() for p in params] if config.ema > 0 else []
    warmup = min(20, max(1, total_steps // 10)) if total_steps else 20
    t0 = time.monotonic()
    step, frac, ema = 0, 0.0, float("nan")
    logger.info(
        "training on %d pair(s), %.2f Mpx, bands %s, crops %d px, %d steps/epoch, limit %s steps / %s s",
        len(cities), n_pix / 1e6, ",".join(bands), crop, steps_per_epoch, total_steps, budget_s,
    )  # fmt: skip
    try:
        net.train()
        while True:
            elapsed = time.monotonic() - t0
            frac = max(
                step / total_steps if total_steps else 0.0,
                elapsed / budget_s if budget_s else 0.0,
            )
            if frac >= 1.0:
                break
            done = _schedule(step, total_steps, elapsed, budget_s)
            lr = config.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * done))
            for group in opt.param_groups:
                group["lr"] = lr
            a, b, lab, val, pair = (t.to(device) for t in sampler.batch(config.batch))
            loss = _loss(net(a, b, pair if pair.shape[1] else None), lab, val, config.dice)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            step += 1
            if shadow:
                with torch.no_grad():
                    decay = min(config.ema, (1.0 + step) / (10.0 + step))
                    for e, p in zip(shadow, params, strict=True):
                        e.lerp_(p.detach(), 1.0 - decay)
            value = float(loss.detach())
            ema = value if math.isnan(ema) else 0.95 * ema + 0.05 * value
            if progress is not None:
                progress(min(frac, 1.0), f"step {step}, loss {ema:.3f}")
        if shadow:
            with torch.no_grad():
                for e, p in zip(shadow, params, strict=True):
                    p.copy_(e)
    finally:
        torch.set_num_threads(old_threads)
        net.eval()
    elapsed = time.monotonic() - t0
    logger.info("trained %d steps in %.0f s, final loss %.3f", step, elapsed, ema)
    crop_recall = _crop_recall(
        net, cities, crop, config.batch, config.seed + 2, meta.threshold, device
    )
    train_info: dict[str, Any] = {
        **asdict(config),
        "pairs": [p.name for p in pairs],
        "coregistered": [p.name for p in pairs if (p.registration or {}).get("corrected")],
        "steps": step,
        "epochs_done": round(step / steps_per_epoch, 2),
        "seconds": round(elapsed, 1),
        "final_loss": round(ema, 4) if not math.isnan(ema) else None,
        "crop_used": crop,
        "initial_change_share": None if share is None else round(share, 4),
        "training_crop_recall": None if crop_recall is None else round(crop_recall, 4),
    }
    threshold = meta.threshold
    if config.calibrate:
        model.meta = replace(meta, tta=False)
        threshold, f1 = calibrate_threshold(model, pairs)
        train_info["threshold_f1_on_training_pairs"] = round(f1, 4)
        logger.info("threshold %.3f (pooled F1 %.3f on the training pairs)", threshold, f1)
    model.meta = replace(meta, training=train_info, threshold=threshold)
    if progress is not None:
        progress(1.0, f"{step} steps, loss {ema:.3f}")
    return model


def calibrate_threshold(
    model: ChangeModel, pairs: Sequence[LabelledPair], bins: int = 200
) -> tuple[float, float]:
    """The probability threshold with the best pooled F1 over ``pairs``, and that F1.

    Probabilities of changed and unchanged pixels are pooled in histograms, so every candidate
    threshold is scored at once.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    pos = np.zeros(bins)
    neg = np.zeros(bins)
    for p in pairs:
        prob = model.probability(p.before.data, p.after.data, p.before.bands)
        ok = np.isfinite(prob)
        pos += np.histogram(prob[ok & p.label], edges)[0]
        neg += np.histogram(prob[ok & ~p.label], edges)[0]
    tp = np.cumsum(pos[::-1])[::-1]  # pixels at or above each lower edge
    fp = np.cumsum(neg[::-1])[::-1]
    fn = pos.sum() - tp
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    k = int(np.argmax(f1))
    return float(edges[k]), float(f1[k])


def cross_validate(
    pairs: Sequence[LabelledPair],
    folds: int,
    config: TrainConfig | None = None,
    *,
    progress: Callable[[int, float, str], None] | None = None,
    after_covers: Sequence[str] = (),
) -> dict[str, Any]:
    """Leave-cities-out cross-validation: pairs sorted by name, fold i tests on ``pairs[i::folds]``
    and trains on the others. Pooled scores sum the confusion counts of every test pair.
    ``after_covers`` filters each test city's change patches by their land cover on the AFTER
    date (see :func:`~sitewatch.analysis.landcover.keep_after_covers`) before they are scored."""
    from ..landcover import keep_after_covers, parse_covers

    covers = parse_covers(after_covers)
    ordered = sorted(pairs, key=lambda p: p.name)
    if not 2 <= folds <= len(ordered):
        raise InputError(f"folds must be between 2 and the number of pairs ({len(ordered)})")
    config = config or TrainConfig()
    total = Scores(0, 0, 0, 0)
    out_folds: list[dict[str, Any]] = []
    per_item: dict[str, Any] = {}
    kinds = KindTally()
    for i in range(folds):
        test = ordered[i::folds]
        train = [p for j, p in enumerate(ordered) if j % folds != i]

        def report(frac: float, msg: str, i: int = i) -> None:
            if progress is not None:
                progress(i, frac, msg)

        model = train_change_model(train, replace(config, seed=config.seed + i), progress=report)
        fold_scores = Scores(0, 0, 0, 0)
        for p in test:
            prob = model.probability(p.before.data, p.after.data, p.before.bands)
            pred = np.nan_to_num(prob, nan=0.0) >= model.meta.threshold
            if covers:
                pred = keep_after_covers(pred, p.before.data, p.after.data, p.before.bands, covers)
            s = Scores.of(pred, p.label)
            fold_scores, total = fold_scores + s, total + s
            per_item[p.name] = s.as_dict()
            kinds.add(pred, p)
            logger.info("fold %d: %s F1 %.3f", i, p.name, s.f1)
        out_folds.append(
            {
                "fold": i,
                "train": [p.name for p in train],
                "test": [p.name for p in test],
                "steps": model.meta.training.get("steps"),
                "seconds": model.meta.training.get("seconds"),
                "pooled": fold_scores.as_dict(),
            }
        )
    f1s = [v["f1"] for v in per_item.values()]
    return {
        "folds": out_folds,
        "per_item": per_item,
        "pooled": total.as_dict(),
        "mean_f1": round(float(np.mean(f1s)), 4),
        "by_kind": kinds.as_dict(),
        "config": asdict(config),
        "after_covers": list(covers),
    }
