"""Frozen dataclasses for the catalog's values.

Geometries are shapely objects in lon/lat (EPSG:4326). Every record has a string ``id``; sites use a
human-readable slug, other records a random hex id made by :func:`new_id`. ``version`` counts the
updates a stored record has had (0 = not stored yet) and drives optimistic concurrency.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from ..errors import InputError
from ..geo import check_lonlat, valid_geometry
from ..types import (
    ACTIVITY_PHASES,
    ALERT_STATES,
    CANDIDATE_STATES,
    FEATURE_KINDS,
    MEASUREMENT_KINDS,
    SITE_CATEGORIES,
    SITE_STATUSES,
    ActivityPhase,
    AlertState,
    CandidateState,
    FeatureKind,
    MeasurementKind,
    SiteCategory,
    SiteStatus,
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
    "check_choice",
    "known_height",
    "new_id",
    "site_id_for",
    "slugify",
    "source_id_for",
    "stable_id",
    "utcnow",
]

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def utcnow() -> datetime:
    """The current time in UTC, to the microsecond."""
    return datetime.now(UTC)


def new_id() -> str:
    """A random 16-hex-digit id for non-site records."""
    return secrets.token_hex(8)


def slugify(text: str) -> str:
    """A lower-case ASCII slug of ``text`` (``"Sino-ri (HQ)"`` becomes ``"sino-ri-hq"``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:128]


def site_id_for(name: str) -> str:
    """The id a site called ``name`` gets when none is given: the slug of the name, or, for a
    name with no Latin letters or digits (``삭간몰``), ``site-`` and a hash of the name, so the
    same name gets the same id whether typed in, imported or created in the web app."""
    if not name.strip():
        raise InputError("a site needs a name that is not blank")
    return slugify(name) or f"site-{stable_id(name)[:10]}"


def source_id_for(citation: str) -> str:
    """The id a source gets when none is given: the slug of its citation's first words, at
    most 40 characters and cut between words (``source-`` and a hash for a citation with no
    Latin letters or digits)."""
    slug = ""
    for word in slugify(citation).split("-"):
        if slug and len(slug) + 1 + len(word) > 40:
            break
        slug = f"{slug}-{word}" if slug else word[:40]
    return slug or f"source-{stable_id(citation)[:10]}"


def stable_id(*parts: str) -> str:
    """A 16-hex-digit id derived from ``parts`` (same input, same id: imports are repeatable)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8)
    return digest.hexdigest()


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    """Raise :class:`InputError` naming the allowed values when ``value`` is not one of them."""
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def _aware(dt: datetime | None, what: str) -> None:
    if dt is not None and dt.tzinfo is None:
        raise InputError(f"{what} must carry a time zone (use UTC), got {dt.isoformat()}")


@dataclass(frozen=True)
class Source:
    """A citation: where a fact comes from."""

    id: str
    citation: str
    url: str | None = None
    licence: str | None = None
    accessed: date | None = None
    notes: str = ""
    version: int = 0

    def __post_init__(self) -> None:
        if not self.citation.strip():
            raise InputError(f"source {self.id!r} needs a citation text")


@dataclass(frozen=True)
class Site:
    """A place of interest: a base, a launch facility, a suspected site."""

    id: str
    name: str
    lon: float
    lat: float
    aoi: BaseGeometry | None = None
    aliases: tuple[str, ...] = ()
    country: str | None = None
    category: SiteCategory = "other"
    status: SiteStatus = "suspected"
    declared: bool = False
    declaration_ref: str | None = None
    confidence: float | None = None
    tags: tuple[str, ...] = ()
    notes: str = ""
    source_ids: tuple[str, ...] = ()
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if not _SLUG_RE.match(self.id):
            raise InputError(
                f"site id {self.id!r} is not a slug (lower-case letters, digits, '.', '_', '-'; "
                f"start with a letter or digit), e.g. {slugify(self.id) or 'site-1'!r}"
            )
        if not self.name.strip():
            raise InputError(f"site {self.id!r} needs a name")
        check_lonlat(self.lon, self.lat, what=f"site {self.id!r}")
        check_choice(self.category, SITE_CATEGORIES, "site category")
        check_choice(self.status, SITE_STATUSES, "site status")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise InputError(f"site {self.id!r}: confidence must be in 0..1, got {self.confidence}")
        if self.aoi is not None:
            valid_geometry(self.aoi, what=f"site {self.id!r} AOI")
            if self.aoi.geom_type not in ("Polygon", "MultiPolygon"):
                raise InputError(
                    f"site {self.id!r}: the AOI must be a polygon, got {self.aoi.geom_type}"
                )
        for tag in self.tags:
            if not tag or tag != tag.strip() or "," in tag:
                raise InputError(f"site {self.id!r}: bad tag {tag!r} (no commas, no outer spaces)")
        _aware(self.created_at, "created_at")
        _aware(self.updated_at, "updated_at")

    @property
    def point(self) -> Point:
        """The site's point as a shapely geometry."""
        return Point(self.lon, self.lat)

    @property
    def geometry(self) -> BaseGeometry:
        """The AOI if known, else the point."""
        return self.aoi if self.aoi is not None else self.point


@dataclass(frozen=True)
class Feature:
    """A feature of a site: a tunnel portal, a berm, a shelter, a headquarters building."""

    id: str
    site_id: str
    kind: FeatureKind
    geometry: BaseGeometry
    name: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    first_seen: date | None = None
    last_seen: date | None = None
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        check_choice(self.kind, FEATURE_KINDS, "feature kind")
        valid_geometry(self.geometry, what=f"feature {self.id!r}")
        b = self.geometry.bounds
        check_lonlat(b[0], b[1], what=f"feature {self.id!r}")
        check_lonlat(b[2], b[3], what=f"feature {self.id!r}")
        if self.first_seen and self.last_seen and self.last_seen < self.first_seen:
            raise InputError(f"feature {self.id!r}: last_seen is before first_seen")


def _texts(obj: Any, what: str, *names: str, optional: bool = False) -> None:
    """Refuse non-text values in text fields (an importer may hand over any JSON value)."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        if not isinstance(value, str):
            raise InputError(
                f"{what} {name} must be text, got {type(value).__name__} {value!r:.60}"
            )


@dataclass(frozen=True)
class Observation:
    """A dated look at a site in one image, by an analyst or a job."""

    id: str
    site_id: str
    acquired: datetime
    sensor: str = ""
    scene_id: str | None = None
    gsd_m: float | None = None
    sun_azimuth: float | None = None
    sun_elevation: float | None = None
    view_off_nadir: float | None = None
    analyst: str = ""
    phase: ActivityPhase | None = None
    text: str = ""
    evidence: tuple[str, ...] = ()
    version: int = 0
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        _aware(self.acquired, "acquired")
        _texts(self, "observation", "id", "site_id", "sensor", "analyst", "text")
        _texts(self, "observation", "scene_id", optional=True)
        if self.phase is not None:
            check_choice(self.phase, ACTIVITY_PHASES, "activity phase")


@dataclass(frozen=True)
class Measurement:
    """A measured quantity with its uncertainty and how it was obtained."""

    id: str
    site_id: str
    kind: MeasurementKind
    value: float
    unit: str
    uncertainty: float | None = None
    feature_id: str | None = None
    observation_id: str | None = None
    method: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    analyst: str = ""
    measured_at: datetime | None = None
    version: int = 0

    def __post_init__(self) -> None:
        check_choice(self.kind, MEASUREMENT_KINDS, "measurement kind")
        if self.uncertainty is not None and self.uncertainty < 0:
            raise InputError(f"measurement {self.id!r}: uncertainty must be >= 0")


def known_height(
    feature: Feature, measurements: Sequence[Measurement]
) -> tuple[float, float, dict[str, Any]] | None:
    """What the catalog knows of a feature's height: the height measurement of it stored last
    (``measurements`` in the order stored: from shadows, by hand), else its ``height_m``
    attribute (a number, or the text of a KML file's ExtendedData); with its one-sigma error and
    where it came from (``height_from``, and ``height_measurement`` for a measurement)."""
    heights = [m for m in measurements if m.kind == "height" and m.feature_id == feature.id]
    if heights:
        m = heights[-1]
        return (
            m.value,
            m.uncertainty or 0.0,
            {"height_from": f"height measurement {m.id}", "height_measurement": m.id},
        )
    attr = feature.attributes.get("height_m")
    try:
        value = float(attr) if attr is not None and not isinstance(attr, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if math.isfinite(value) and value >= 0:
        return value, 0.0, {"height_from": f"feature {feature.id}'s height_m attribute"}
    return None


@dataclass(frozen=True)
class ChangeEvent:
    """Change detected at a site between two dates."""

    id: str
    site_id: str
    before: datetime
    after: datetime
    method: str
    area_m2: float
    geometry: BaseGeometry | None = None
    magnitude: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    version: int = 0

    def __post_init__(self) -> None:
        _aware(self.before, "before")
        _aware(self.after, "after")
        if self.after < self.before:
            raise InputError(f"change event {self.id!r}: 'after' is earlier than 'before'")


@dataclass(frozen=True)
class Alert:
    """Something an analyst should look at; ``key`` makes raising it idempotent."""

    id: str
    site_id: str
    rule: str
    message: str
    key: str
    severity: str = "info"
    state: AlertState = "new"
    details: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    version: int = 0

    def __post_init__(self) -> None:
        check_choice(self.state, ALERT_STATES, "alert state")
        check_choice(self.severity, ("info", "warning", "critical"), "alert severity")


@dataclass(frozen=True)
class Candidate:
    """A place found by broad-area search, waiting for triage."""

    id: str
    run_id: str
    geometry: BaseGeometry
    score: float
    rank: int
    state: CandidateState = "pending"
    site_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    version: int = 0

    def __post_init__(self) -> None:
        check_choice(self.state, CANDIDATE_STATES, "candidate state")


@dataclass(frozen=True)
class DeclaredSite:
    """One entry of a declaration."""

    name: str
    lon: float | None = None
    lat: float | None = None
    ref: str | None = None

    def __post_init__(self) -> None:
        if (self.lon is None) != (self.lat is None):
            raise InputError(f"declared site {self.name!r}: give both lon and lat or neither")
        if self.lon is not None and self.lat is not None:
            check_lonlat(self.lon, self.lat, what=f"declared site {self.name!r}")


@dataclass(frozen=True)
class Declaration:
    """A list of sites declared by a party (to diff against the catalog)."""

    id: str
    party: str
    declared_on: date | None = None
    entries: tuple[DeclaredSite, ...] = ()
    source_id: str | None = None
    version: int = 0


@dataclass(frozen=True)
class HistoryEntry:
    """One append-only history record: who changed what, when, from what to what."""

    seq: int
    at: datetime
    actor: str
    entity: str
    entity_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    site_id: str | None = None
    """The site the record belongs to (None for sources, declarations, site-less records)."""


@dataclass(frozen=True)
class SiteRecord:
    """One site read from an exchange file, with the features, observations, measurements and
    cited sources that came with it.

    ``line`` is where the record started in the file (1-based) when the format has lines.
    """

    site: Site
    features: tuple[Feature, ...] = ()
    observations: tuple[Observation, ...] = ()
    sources: tuple[Source, ...] = ()
    line: int | None = None
    measurements: tuple[Measurement, ...] = ()
