"""Learned change detection (the ``ml`` extra): a compact FC-Siam-diff Siamese U-Net.

torch is imported only when a function here is called; without it they raise
:class:`~sitewatch.errors.MissingExtraError`. Weights are never shipped: ``sitewatch change
train-oscd`` produces them.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ...errors import MissingExtraError

if TYPE_CHECKING:
    from ..change import ChangeResult, PixelArea
    from ..changeeval import LabelledPair
    from .changemodel import ChangeModel
    from .training import TrainConfig

__all__ = [
    "NORMALISATIONS",
    "PRIORS",
    "cross_validate",
    "detect_with_model",
    "load_model",
    "require_torch",
    "train_change_model",
    "train_config",
]

MODEL_METHOD = "siam_diff_unet"

NORMALISATIONS = ("per_image_zscore", "zscore_log", "zscore_indices")
"""Network inputs: ``per_image_zscore``, the bands z-scored per image; ``zscore_log``, those plus
each band's log reflectance on a fixed scale, which keeps the absolute brightness (built-up versus
vegetation versus water) that the per-image z-score removes; ``zscore_indices``, the z-scores plus
the normalised-difference indices of :data:`~sitewatch.analysis.change.SPECTRAL_INDICES` that the
bands allow (see :func:`~sitewatch.analysis.change.indices_for`). In the OSCD cross-validation
``zscore_log`` fitted the training cities better but scored lower on the unseen ones;
``zscore_indices`` scored higher (see :mod:`.training`)."""

PRIORS = ("none", "cva")
"""Pair channels given to the network besides the two images: ``none``; ``cva``, the unsupervised
change magnitude of the pair (see :func:`.changemodel.pair_prior`)."""

CITY_WEIGHTINGS = ("area", "equal")
"""How training crops share the cities: ``area``, in proportion to their valid pixels, or
``equal`` (see :attr:`.training.TrainConfig.city_weighting`)."""


def require_torch(purpose: str = "the learned change model") -> Any:
    """The torch module, or MissingExtraError naming the ``ml`` extra (and ``purpose``).

    Before torch's first import, OpenMP threads are told to sleep rather than spin while they
    wait (``OMP_WAIT_POLICY=PASSIVE`` unless set): on a shared machine with few cores, spinning
    threads made a training step more than ten times slower.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise MissingExtraError("torch", "ml", purpose) from exc


def train_config(**kw: Any) -> TrainConfig:
    """A :class:`~.training.TrainConfig` (keyword arguments as its fields)."""
    require_torch()
    from .training import TrainConfig

    return TrainConfig(**kw)


def train_change_model(
    pairs: Sequence[LabelledPair],
    config: TrainConfig | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> ChangeModel:
    """Train a change model on labelled pairs; see :func:`.training.train_change_model`."""
    require_torch()
    from .training import train_change_model as train

    return train(pairs, config, progress=progress)


def cross_validate(
    pairs: Sequence[LabelledPair],
    folds: int,
    config: TrainConfig | None = None,
    *,
    progress: Callable[[int, float, str], None] | None = None,
    after_covers: Sequence[str] = (),
) -> dict[str, Any]:
    """Leave-pairs-out cross-validation; see :func:`.training.cross_validate`."""
    require_torch()
    from .training import cross_validate as cv

    return cv(pairs, folds, config, progress=progress, after_covers=after_covers)


def load_model(path: str | Path) -> ChangeModel:
    """Load a model saved by ``ChangeModel.save`` (``MODEL`` and ``MODEL.json``)."""
    require_torch()
    from .changemodel import ChangeModel

    return ChangeModel.load(path)


def detect_with_model(
    model: ChangeModel,
    before: NDArray[Any],
    after: NDArray[Any],
    *,
    bands: Sequence[str],
    opening_radius: int = 0,
    min_area_m2: float = 0.0,
    pixel_area_m2: PixelArea | None = None,
    nodata_before: float | None = None,
    nodata_after: float | None = None,
    progress: Callable[[float], None] | None = None,
    after_covers: Sequence[str] = (),
) -> ChangeResult:
    """A :class:`~sitewatch.analysis.change.ChangeResult` from the model: the magnitude is the
    change probability, the mask is probability >= the model's threshold, then cleaned.

    The images may be given as stored, with their no-data values; they are read window by
    window (see :meth:`~.changemodel.ChangeModel.probability`), and ``progress`` gets the share
    of the model's tiles done. ``after_covers`` keeps only the patches whose land cover on the
    AFTER date is one of them (see :func:`~sitewatch.analysis.landcover.keep_after_covers`)."""
    from ..change import ChangeConfig, ChangeResult, clean_mask

    prob = model.probability(
        np.asarray(before), np.asarray(after), bands, nodata_before=nodata_before,
        nodata_after=nodata_after, progress=progress,
    )  # fmt: skip
    valid = np.isfinite(prob)
    mask = prob >= model.meta.threshold  # NaN (no data) is never change
    mask = clean_mask(
        mask, opening_radius=opening_radius, min_area_m2=min_area_m2, pixel_area_m2=pixel_area_m2
    )
    config = ChangeConfig(
        opening_radius=opening_radius, min_area_m2=min_area_m2, after_covers=tuple(after_covers)
    )
    if config.after_covers:
        from ..landcover import keep_after_covers

        mask = keep_after_covers(
            mask, np.asarray(before), np.asarray(after), bands, config.after_covers,
            nodata_before, nodata_after,
        )  # fmt: skip
    return ChangeResult(
        mask=mask,
        magnitude=prob,
        valid=valid,
        threshold=model.meta.threshold,
        method=MODEL_METHOD,
        threshold_method="model",
        bands=model.meta.bands,
        config=config,
        extra={
            # replaces the unsupervised method's settings in ``summary()``
            "config": {
                "method": MODEL_METHOD,
                "threshold": model.meta.threshold,
                "opening_radius": opening_radius,
                "min_area_m2": min_area_m2,
                "after_covers": list(config.after_covers),
                "trained_on": model.meta.training.get("pairs"),
                "training_steps": model.meta.training.get("steps"),
                "tta": model.meta.tta,
            }
        },
    )
