"""The site catalog: models, schema, the Catalog store and exchange formats."""

from __future__ import annotations

from .models import (
    Alert,
    Candidate,
    ChangeEvent,
    Declaration,
    DeclaredSite,
    Feature,
    HistoryEntry,
    Measurement,
    Observation,
    Site,
    SiteRecord,
    Source,
    new_id,
    slugify,
)

__all__ = [
    "Alert",
    "Candidate",
    "ChangeEvent",
    "Declaration",
    "DeclaredSite",
    "Feature",
    "HistoryEntry",
    "Measurement",
    "Observation",
    "Site",
    "SiteRecord",
    "Source",
    "new_id",
    "slugify",
]
