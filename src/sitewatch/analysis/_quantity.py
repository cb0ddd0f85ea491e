"""The value object of a measurement: value, one-sigma uncertainty, unit, method, inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Quantity", "unit_text", "value_parts", "value_text"]


@dataclass(frozen=True)
class Quantity:
    """A measured value with its one-sigma uncertainty, unit, method and inputs."""

    value: float
    uncertainty: float
    unit: str
    method: str
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": _round(self.value),
            "uncertainty": _round(self.uncertainty),
            "unit": self.unit,
            "method": self.method,
            "inputs": dict(self.inputs),
        }


def _round(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(float(v), nd)


_UNIT_TEXT = {"m2": "m²", "m3": "m³", "km2": "km²", "km3": "km³"}


def unit_text(unit: str) -> str:
    """A unit as text is printed (``m³`` for the stored ``m3``); the catalog keeps units in ASCII,
    as typed."""
    return _UNIT_TEXT.get(unit, unit)


def value_text(value: float, unc: float | None, unit: str) -> str:
    """A measured value with its one-sigma uncertainty, to the uncertainty's two significant
    digits (``18.3 ± 0.9 m``, ``5,581 ± 315 m³``); without one, to four significant digits and
    says so (``52,000 m³ (no uncertainty recorded)``). Never in exponent notation."""
    shown, sigma = value_parts(value, unc)
    if sigma:
        return f"{shown} ± {sigma} {unit_text(unit)}".strip()
    return f"{shown} {unit_text(unit)} (no uncertainty recorded)".strip()


def value_parts(value: float, unc: float | None) -> tuple[str, str]:
    """The value and its uncertainty as :func:`value_text` rounds them (``"18.3", "0.9"``), for
    tables with a column each; the uncertainty is "" when there is none."""
    if unc is not None and unc > 0 and math.isfinite(unc):
        d = max(0, 1 - math.floor(math.log10(unc)))
        return f"{value:,.{d}f}", f"{unc:,.{d}f}"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}", ""
    return f"{value:,.{max(0, 3 - math.floor(math.log10(abs(value))))}f}", ""
