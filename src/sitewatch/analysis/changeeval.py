"""Evaluation of change detectors on labelled data: OSCD cities and A/B/label image pairs.

Scores are confusion-matrix counts per city (or pair), and pooled over all of them (the counts are
summed before the ratios are taken, so large cities weigh more): precision, recall, F1, IoU and
Cohen's kappa of the "change" class.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.errors import NotGeoreferencedWarning

from ..errors import InputError
from ._changeio import Raster, align_pair, coregister_pair, read_image
from .change import indices_for
from .landcover import kind_confusion

__all__ = [
    "OSCD_BANDS",
    "KindTally",
    "LabelledPair",
    "Scores",
    "evaluate",
    "iter_oscd",
    "iter_pairs",
    "load_oscd_city",
    "oscd_cities",
]

logger = logging.getLogger(__name__)

OSCD_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B11", "B12")
"""The bands used from OSCD (the 10 m bands plus SWIR at 20 m, resampled to 10 m), when present."""

Detector = Callable[["LabelledPair"], NDArray[np.bool_]]


@dataclass(frozen=True)
class Scores:
    """Confusion counts of the change class, and the scores derived from them."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Scores) -> Scores:
        return Scores(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @classmethod
    def of(cls, pred: NDArray[np.bool_], truth: NDArray[np.bool_], valid: NDArray[np.bool_] | None = None) -> Scores:  # fmt: skip
        if pred.shape != truth.shape:
            raise InputError(f"prediction {pred.shape} and label {truth.shape} differ in shape")
        if valid is not None:
            pred, truth = pred[valid], truth[valid]
        tp = int(np.count_nonzero(pred & truth))
        fp = int(np.count_nonzero(pred & ~truth))
        fn = int(np.count_nonzero(~pred & truth))
        return cls(tp, fp, fn, int(pred.size) - tp - fp - fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 0.0

    @property
    def iou(self) -> float:
        d = self.tp + self.fp + self.fn
        return self.tp / d if d else 0.0

    @property
    def kappa(self) -> float:
        n = self.tp + self.fp + self.fn + self.tn
        if n == 0:
            return 0.0
        po = (self.tp + self.tn) / n
        pe = (
            (self.tp + self.fp) * (self.tp + self.fn) + (self.fn + self.tn) * (self.fp + self.tn)
        ) / (n * n)
        return (po - pe) / (1 - pe) if pe < 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "iou": round(self.iou, 4),
            "kappa": round(self.kappa, 4),
            "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
        }  # fmt: skip


@dataclass(frozen=True)
class LabelledPair:
    """Two co-registered images and their change label (True = change)."""

    name: str
    before: Raster
    after: Raster
    label: NDArray[np.bool_]
    registration: dict[str, Any] | None = None
    """How AFTER was measured against BEFORE and moved (see
    :func:`~sitewatch.analysis._changeio.coregister_pair`); None when it was not co-registered."""


# --- OSCD ---------------------------------------------------------------------------------------


def oscd_cities(root: str | Path) -> list[str]:
    """The labelled cities of an OSCD folder (those with imgs_1, imgs_2 and cm/<city>-cm.tif)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{root}: not a folder; give the OSCD root (it holds one folder per city)")
    cities, partial = [], []
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        parts = {
            "imgs_1": d / "imgs_1",
            "imgs_2": d / "imgs_2",
            "cm": d / "cm" / f"{d.name}-cm.tif",
        }
        missing = [
            str(path.relative_to(d))
            for name, path in parts.items()
            if not (path.is_file() if name == "cm" else path.is_dir())
        ]
        if not missing:
            cities.append(d.name)
        elif len(missing) < len(parts):  # a city folder with a part missing: say which
            partial.append(f"{d.name} lacks {', '.join(missing)}")
    if partial and cities:
        logger.warning("%s: skipped incomplete OSCD cities: %s", root, "; ".join(partial))
    if not cities:
        raise InputError(
            f"{root}: no OSCD city folders (<city>/imgs_1, imgs_2, cm/<city>-cm.tif)"
            + (f"; incomplete: {'; '.join(partial)}" if partial else "")
        )
    return cities


def load_oscd_city(root: str | Path, city: str, *, coregister: bool = True) -> LabelledPair:
    """One OSCD city on the grid of its first image's 10 m bands (AFTER and 20 m bands resampled).

    With ``coregister`` (the default) AFTER is moved onto BEFORE by the sub-pixel shift phase
    correlation measures: the labels were drawn on pairs the dataset's authors registered (its
    ``imgs_*_rect`` folders), while the per-band files of ``imgs_1``/``imgs_2`` are the tiles as
    downloaded, up to 1.4 px apart (abudhabi). Moving AFTER raised the unsupervised method's
    pooled F1 on the 10 labelled cities from 0.326 to 0.339 (abudhabi 0.26 -> 0.31).
    """
    base = Path(root) / city
    if not base.is_dir():
        raise InputError(
            f"no city {city!r} under {root}; choose among {', '.join(oscd_cities(root))}"
        )
    present = {p.stem.rsplit("_", 1)[-1].upper() for p in (base / "imgs_1").glob("*.tif")}
    present &= {p.stem.rsplit("_", 1)[-1].upper() for p in (base / "imgs_2").glob("*.tif")}
    bands = tuple(b for b in OSCD_BANDS if b in present)
    needed = {"B02", "B03", "B04", "B08"}
    if not needed <= set(bands):
        raise InputError(
            f"{base}: OSCD needs at least B02 B03 B04 B08 in both dates; found {sorted(present)}"
        )
    before = read_image(base / "imgs_1", bands=bands)
    after = read_image(base / "imgs_2", bands=bands)
    cm = _read_picture(base / "cm" / f"{city}-cm.tif")[0]
    if cm.shape != before.shape:
        raise InputError(
            f"{city}: label is {cm.shape} pixels but the 10 m bands are {before.shape}"
        )
    before, after = align_pair(before, after)
    registration = None
    if coregister:
        after, registration = coregister_pair(before, after)
    return LabelledPair(city, before, after, cm == 2, registration)


def iter_oscd(
    root: str | Path, cities: list[str] | None = None, *, coregister: bool = True
) -> Iterator[LabelledPair]:
    """The labelled OSCD cities (all of them, or ``cities``), loaded one at a time (see
    :func:`load_oscd_city` for ``coregister``)."""
    for city in cities or oscd_cities(root):
        yield load_oscd_city(root, city, coregister=coregister)


# --- A/B/label pairs ------------------------------------------------------------------------------


def _read_picture(path: Path) -> NDArray[Any]:
    """All bands of a picture that has no georeferencing by nature (PNG, BMP, OSCD masks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return np.asarray(ds.read())


def _read_rgb(path: Path) -> Raster:
    data = _read_picture(path)
    if data.shape[0] >= 3:
        data = data[:3]
        names: tuple[str, ...] = ("red", "green", "blue")
    else:
        names = tuple(f"b{i + 1}" for i in range(data.shape[0]))
    return Raster(data.astype(np.float32), names, None, rasterio.Affine.identity(), None)


def _read_label(path: Path) -> NDArray[np.bool_]:
    return np.asarray(_read_picture(path)[0] > 0)


def _labelled(name: str, a: Path, b: Path, label: Path, coregister: bool) -> LabelledPair:
    before, after = _read_rgb(a), _read_rgb(b)
    registration = None
    if coregister and before.shape == after.shape:
        after, registration = coregister_pair(before, after)
    return LabelledPair(name, before, after, _read_label(label), registration)


def iter_pairs(root: str | Path, *, coregister: bool = False) -> Iterator[LabelledPair]:
    """Labelled pairs under ``root``: LEVIR-CD style (A/, B/, label/ with the same file names) and
    SZTAKI style (folders holding im1, im2 and gt images), searched recursively. With
    ``coregister`` each B is moved onto its A by the sub-pixel shift phase correlation measures
    (these benchmarks come registered, so it is off by default)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{root}: not a folder of labelled pairs")
    found = 0
    for a_dir in sorted(base.rglob("A")):
        b_dir, l_dir = a_dir.parent / "B", a_dir.parent / "label"
        if not (a_dir.is_dir() and b_dir.is_dir() and l_dir.is_dir()):
            continue
        for a in sorted(a_dir.iterdir()):
            b, lab = b_dir / a.name, l_dir / a.name
            if b.is_file() and lab.is_file():
                found += 1
                yield _labelled(str(a.relative_to(base)), a, b, lab, coregister)
    for im1 in sorted(base.rglob("im1.*")):
        d = im1.parent
        im2 = next(iter(sorted(d.glob("im2.*"))), None)
        gt = next(iter(sorted(d.glob("gt.*"))), None)
        if im2 is not None and gt is not None:
            found += 1
            pair = _labelled(str(d.relative_to(base)), im1, im2, gt, coregister)
            if pair.label.shape != pair.before.shape:
                logger.warning(
                    "%s: label %s differs from image %s, skipped",
                    d,
                    pair.label.shape,
                    pair.before.shape,
                )
                continue
            yield pair
    if not found:
        raise InputError(f"{root}: no labelled pairs (A/ B/ label/ folders, or im1 im2 gt files)")


# --- scoring --------------------------------------------------------------------------------------


def evaluate(pairs: Iterator[LabelledPair], detector: Detector) -> dict[str, Any]:
    """Run ``detector`` on every pair; per-pair scores and pooled scores (summed counts), and
    (``by_kind``) the detected pixels that the labels confirm or not, pooled by the kind of change
    of their patch (see :func:`~.landcover.kind_confusion`; empty for bands without an index,
    such as the RGB pairs), largest first."""
    per: dict[str, Any] = {}
    total = Scores(0, 0, 0, 0)
    f1s = []
    kinds = KindTally()
    for pair in pairs:
        pred = detector(pair)
        s = Scores.of(pred, pair.label)
        total = total + s
        f1s.append(s.f1)
        per[pair.name] = s.as_dict()
        if pair.registration is not None:
            per[pair.name]["coregistration"] = pair.registration
        kinds.add(pred, pair)
        logger.info("%s: F1 %.3f", pair.name, s.f1)
    return {
        "per_item": per,
        "pooled": total.as_dict(),
        "mean_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "by_kind": kinds.as_dict(),
    }


class KindTally:
    """Detected pixels that the labels confirm (``tp``) or not (``fp``), pooled over pairs by the
    kind of change of their patch (see :func:`~.landcover.kind_confusion`); pairs whose bands
    allow no spectral index (RGB pictures) add nothing."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    def add(self, pred: NDArray[np.bool_], pair: LabelledPair) -> None:
        if not indices_for(pair.before.bands):
            return
        found = kind_confusion(
            pred, pair.label, pair.before.data, pair.after.data, pair.before.bands,
            pair.before.nodata, pair.after.nodata,
        )  # fmt: skip
        for kind, c in found.items():
            into = self.counts.setdefault(kind, {"tp": 0, "fp": 0})
            into["tp"] += c["tp"]
            into["fp"] += c["fp"]

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Per kind ``tp``, ``fp`` and ``precision``, the most detected pixels first."""
        ordered = sorted(self.counts.items(), key=lambda kc: (-kc[1]["tp"] - kc[1]["fp"], kc[0]))
        return {k: {**c, "precision": round(c["tp"] / (c["tp"] + c["fp"]), 4)} for k, c in ordered}
