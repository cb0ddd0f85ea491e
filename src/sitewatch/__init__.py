"""sitewatch: reveal and monitor undeclared military sites from satellite imagery."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
