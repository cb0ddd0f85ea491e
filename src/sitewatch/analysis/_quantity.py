"""The value object of a measurement: value, one-sigma uncertainty, unit, method, inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Quantity"]


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
