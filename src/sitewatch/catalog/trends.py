"""How a feature's measured quantities changed between the images they were read from.

Pure functions over catalog :class:`~sitewatch.catalog.models.Measurement` and
:class:`~sitewatch.catalog.models.Observation` records, shared by the briefs, ``sites show``, the
KMZ balloons, ``measure list`` and the monitor's ``measured_change`` alerts, so that all of them
date a measurement, and judge a change, by one rule:

* a measurement's image date is its observation's acquisition, else the ``acquired`` its inputs
  name;
* a change is "grew" or "shrank" when the difference exceeds ``sigmas`` times its one-sigma
  error (the two errors added in quadrature), else "no significant change"; without a recorded
  error it is "uncertainty unknown".

Quantities are series by feature, kind and unit; on one image date the measurement stored last
counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from .models import Measurement, Observation

__all__ = ["SIGMAS", "image_dates", "measurement_steps", "measurement_trends", "verdict"]

SIGMAS = 2.0
"""A change beyond this many of its one-sigma errors is significant."""

Key = tuple[str | None, str, str]


def image_dates(
    measurements: Iterable[Measurement], observations: Iterable[Observation] = ()
) -> dict[str, str]:
    """The date (``YYYY-MM-DD``) of the image each measurement was read from, by measurement id:
    its observation's acquisition, else the ``acquired`` its inputs name; "" when unknown."""
    seen = {o.id: o.acquired.date().isoformat() for o in observations}
    return {
        m.id: seen.get(m.observation_id or "") or str(m.inputs.get("acquired") or "")[:10]
        for m in measurements
    }


def verdict(change: float, sigma: float | None, sigmas: float = SIGMAS) -> str:
    """ "grew" or "shrank" beyond ``sigmas`` one-sigma errors, else "no significant change";
    "uncertainty unknown" without an error."""
    if sigma is None:
        return "uncertainty unknown"
    if abs(change) > sigmas * sigma:
        return "grew" if change > 0 else "shrank"
    return "no significant change"


def _series(
    measurements: Iterable[Measurement], observations: Iterable[Observation]
) -> dict[Key, list[tuple[str, Measurement]]]:
    """Each quantity's measurements by image date, oldest first (undated ones left out)."""
    measurements = list(measurements)
    dates = image_dates(measurements, observations)
    by_key: dict[Key, dict[str, Measurement]] = {}
    for m in measurements:  # in the order stored: a later one of the same date replaces
        if dates[m.id]:
            by_key.setdefault((m.feature_id, m.kind, m.unit), {})[dates[m.id]] = m
    return {k: sorted(v.items()) for k, v in by_key.items()}


def _compare(
    key: Key,
    a: tuple[str, Measurement],
    b: tuple[str, Measurement],
    sigmas: float,
) -> dict[str, Any]:
    (first_date, ma), (last_date, mb) = a, b
    change = mb.value - ma.value
    sigma = (
        math.hypot(ma.uncertainty, mb.uncertainty)
        if ma.uncertainty is not None and mb.uncertainty is not None
        else None
    )
    feature_id, kind, unit = key
    return {
        "feature_id": feature_id,
        "kind": kind,
        "unit": unit,
        "first": (first_date, ma.value, ma.uncertainty),
        "last": (last_date, mb.value, mb.uncertainty),
        "change": change,
        "sigma": sigma,
        "verdict": verdict(change, sigma, sigmas),
        "measurements": (ma.id, mb.id),
    }


def measurement_trends(
    measurements: Iterable[Measurement],
    observations: Iterable[Observation] = (),
    sigmas: float = SIGMAS,
) -> list[dict[str, Any]]:
    """How each quantity of each feature changed between the first and the last image it was
    measured on: the values, the difference with its one-sigma error and a :func:`verdict`;
    ``dates`` counts the image dates. Quantities measured on one image date only are left out."""
    out = []
    for key, series in _series(measurements, observations).items():
        if len(series) >= 2:
            trend = _compare(key, series[0], series[-1], sigmas)
            trend["dates"] = len(series)
            out.append(trend)
    return out


def measurement_steps(
    measurements: Iterable[Measurement],
    observations: Iterable[Observation] = (),
    sigmas: float = SIGMAS,
) -> list[dict[str, Any]]:
    """Each quantity's change from one image date to the next, in the same form as
    :func:`measurement_trends` (``first`` is the earlier date of the step, ``last`` the later):
    what tells *when* a feature was enlarged, where the trend tells that it was."""
    out = []
    for key, series in _series(measurements, observations).items():
        out += [_compare(key, a, b, sigmas) for a, b in pairwise(series)]
    return out
