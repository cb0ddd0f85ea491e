"""Wire formats of the REST API (pydantic); geometries are GeoJSON objects in lon/lat."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...types import (
    ActivityPhase,
    AlertState,
    FeatureKind,
    MeasurementKind,
    SiteCategory,
    SiteStatus,
)

__all__ = [
    "ERRORS",
    "AlertOut",
    "AlertStateIn",
    "CandidateOut",
    "ChangeEventIn",
    "ChangeEventOut",
    "ChipOut",
    "ConfigOut",
    "DistanceIn",
    "DistanceOut",
    "ErrorOut",
    "EvidenceOut",
    "FeatureIn",
    "FeatureOut",
    "FeaturePatch",
    "HistoryOut",
    "LoginIn",
    "MeOut",
    "MeasuredChangeOut",
    "MeasurementIn",
    "MeasurementOut",
    "MissileClassOut",
    "ObservationIn",
    "ObservationOut",
    "ReportJobOut",
    "ReportRequest",
    "ShadowIn",
    "ShadowOut",
    "SiteIn",
    "SiteOut",
    "SitePatch",
    "SourceIn",
    "SourceOut",
    "SourcePatch",
    "TokenOut",
    "TriageIn",
    "UserIn",
    "UserOut",
]

Geometry = dict[str, Any]
_GEOM = "a GeoJSON geometry in lon/lat (EPSG:4326)"
Lon = Field(ge=-180.0, le=180.0)
Lat = Field(ge=-90.0, le=90.0)
Name = Field(min_length=1, max_length=512)
Label = Field(default="", max_length=512)
Tag = Field(min_length=1, max_length=64, pattern=r"^[^,\s](?:[^,]*[^,\s])?$")


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _In(BaseModel):
    # Python's JSON reader takes NaN and Infinity; no field of a request means either
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorOut(_Out):
    detail: Any = Field(description="what went wrong and how to fix it")
    error: str | None = Field(None, description="the sitewatch exception class")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "invalid input"},
    401: {"model": ErrorOut, "description": "not authenticated"},
    403: {"model": ErrorOut, "description": "role too low, or CSRF token missing"},
    404: {"model": ErrorOut, "description": "no such record"},
    409: {"model": ErrorOut, "description": "duplicate id, or edited by someone else meanwhile"},
    422: {"model": ErrorOut, "description": "the request does not match the schema"},
    500: {"model": ErrorOut, "description": "server or archive error"},
    501: {"model": ErrorOut, "description": "an optional part is not installed"},
    502: {"model": ErrorOut, "description": "an imagery source failed"},
}
"""The error responses every route may give (bodies made by :mod:`sitewatch.web.errors`)."""


class SiteOut(_Out):
    id: str
    name: str
    lon: float
    lat: float
    aoi: Geometry | None = Field(None, description=_GEOM)
    aliases: list[str]
    country: str | None
    category: str
    status: str
    declared: bool
    declaration_ref: str | None
    confidence: float | None
    tags: list[str]
    notes: str
    source_ids: list[str]
    version: int
    created_at: datetime | None
    updated_at: datetime | None


class SiteIn(_In):
    id: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$",
        description="slug; made from the name if left out",
    )
    name: str = Name
    lon: float = Lon
    lat: float = Lat
    aoi: Geometry | None = Field(None, description="a GeoJSON Polygon or MultiPolygon")
    aliases: list[str] = Field(default_factory=list, max_length=50)
    country: str | None = Field(None, max_length=128)
    category: SiteCategory = "other"
    status: SiteStatus = "suspected"
    declared: bool = False
    declaration_ref: str | None = Field(None, max_length=256)
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    tags: list[str] = Field(default_factory=list, max_length=50)
    notes: str = Field("", max_length=20000)


class SitePatch(_In):
    version: int = Field(ge=1, description="the version the edit was based on (optimistic locking)")
    name: str | None = Field(None, min_length=1, max_length=512)
    lon: float | None = Field(None, ge=-180.0, le=180.0)
    lat: float | None = Field(None, ge=-90.0, le=90.0)
    aoi: Geometry | None = Field(None, description="a GeoJSON Polygon; send null to keep")
    clear_aoi: bool = False
    aliases: list[str] | None = Field(None, max_length=50)
    country: str | None = Field(None, max_length=128)
    category: SiteCategory | None = None
    status: SiteStatus | None = None
    declared: bool | None = None
    declaration_ref: str | None = Field(None, max_length=256)
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    tags: list[str] | None = Field(None, max_length=50)
    notes: str | None = Field(None, max_length=20000)
    source_ids: list[str] | None = Field(
        None, max_length=100, description="ids of the sources the site cites (see /api/sources)"
    )


class SourceOut(_Out):
    id: str
    citation: str
    url: str | None
    licence: str | None
    accessed: date | None
    notes: str
    version: int


class SourceIn(_In):
    id: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,127}$",
        description="slug; made from the citation's first words if left out",
    )
    citation: str = Field(min_length=1, max_length=2000)
    url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    licence: str | None = Field(None, max_length=256)
    accessed: date | None = None
    notes: str = Field("", max_length=20000)


class SourcePatch(_In):
    version: int = Field(ge=1, description="the version the edit was based on (optimistic locking)")
    citation: str | None = Field(None, min_length=1, max_length=2000)
    url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    licence: str | None = Field(None, max_length=256)
    accessed: date | None = None
    notes: str | None = Field(None, max_length=20000)


class EvidenceOut(_Out):
    reference: str = Field(description="evidence:<sha256>/<name>, for an observation's evidence")
    name: str
    sha256: str
    size: int


class FeatureOut(_Out):
    id: str
    site_id: str
    kind: str
    geometry: Geometry = Field(description=_GEOM)
    name: str
    attributes: dict[str, Any]
    first_seen: date | None
    last_seen: date | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None


class FeatureIn(_In):
    kind: FeatureKind
    geometry: Geometry = Field(description=_GEOM)
    name: str = Label
    attributes: dict[str, Any] = Field(default_factory=dict)
    first_seen: date | None = None
    last_seen: date | None = None


class FeaturePatch(_In):
    version: int = Field(ge=1)
    kind: FeatureKind | None = None
    geometry: Geometry | None = Field(None, description=_GEOM)
    name: str | None = Field(None, max_length=512)
    attributes: dict[str, Any] | None = None
    first_seen: date | None = None
    last_seen: date | None = None


class ObservationOut(_Out):
    id: str
    site_id: str
    acquired: datetime
    sensor: str
    scene_id: str | None
    gsd_m: float | None
    sun_azimuth: float | None
    sun_elevation: float | None
    view_off_nadir: float | None
    analyst: str
    phase: str | None
    text: str
    evidence: list[str]
    version: int
    created_at: datetime | None


class ObservationIn(_In):
    acquired: datetime = Field(description="UTC acquisition time (with a time zone)")
    sensor: str = Field("", max_length=128)
    scene_id: str | None = Field(None, max_length=512)
    gsd_m: float | None = Field(None, gt=0.0, le=10000.0)
    sun_azimuth: float | None = Field(None, ge=0.0, le=360.0)
    sun_elevation: float | None = Field(None, ge=-90.0, le=90.0)
    view_off_nadir: float | None = Field(None, ge=0.0, le=90.0)
    phase: ActivityPhase | None = None
    text: str = Field("", max_length=20000)
    evidence: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="references from POST /api/evidence, or web addresses (https://...)",
    )


class ObservationPatch(_In):
    """A correction of an observation: the fields sent replace the stored ones."""

    version: int = Field(ge=1)
    acquired: datetime | None = Field(None, description="UTC acquisition time (with a time zone)")
    sensor: str | None = Field(None, max_length=128)
    scene_id: str | None = Field(None, max_length=512)
    gsd_m: float | None = Field(None, gt=0.0, le=10000.0)
    sun_azimuth: float | None = Field(None, ge=0.0, le=360.0)
    sun_elevation: float | None = Field(None, ge=-90.0, le=90.0)
    view_off_nadir: float | None = Field(None, ge=0.0, le=90.0)
    phase: ActivityPhase | None = None
    text: str | None = Field(None, max_length=20000)
    evidence: list[str] | None = Field(
        None,
        max_length=50,
        description="the whole new list: references from POST /api/evidence, or web addresses",
    )


class MeasurementOut(_Out):
    id: str
    site_id: str
    kind: str
    value: float
    unit: str
    uncertainty: float | None
    feature_id: str | None
    observation_id: str | None
    method: str
    inputs: dict[str, Any]
    analyst: str
    measured_at: datetime | None
    version: int


class MeasuredChangeOut(_Out):
    """How one measured quantity of a feature changed between the first and the last image it
    was measured on (as ``sitewatch sites show --json`` gives it in ``measured_change``)."""

    feature_id: str | None
    kind: str
    unit: str
    first: tuple[str, float, float | None] = Field(description="image date, value, one sigma")
    last: tuple[str, float, float | None] = Field(description="image date, value, one sigma")
    dates: int = Field(description="image dates the quantity was measured on")
    change: float
    sigma: float | None = Field(description="one sigma of the change (errors in quadrature)")
    verdict: Literal["grew", "shrank", "no significant change", "uncertainty unknown"]
    measurements: tuple[str, str] = Field(description="ids of the first and last measurement")


class MeasurementIn(_In):
    kind: MeasurementKind
    value: float = Field(allow_inf_nan=False)
    unit: str = Field(min_length=1, max_length=32)
    uncertainty: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    feature_id: str | None = Field(None, max_length=64)
    observation_id: str | None = Field(None, max_length=64)
    method: str = Field("", max_length=128)
    inputs: dict[str, Any] = Field(default_factory=dict)


class ChangeEventOut(_Out):
    id: str
    site_id: str
    before: datetime
    after: datetime
    method: str
    area_m2: float
    geometry: Geometry | None = Field(None, description=_GEOM)
    magnitude: float | None
    details: dict[str, Any]
    created_at: datetime | None
    version: int


class ChangeEventIn(_In):
    before: datetime
    after: datetime
    method: str = Field(min_length=1, max_length=128)
    area_m2: float = Field(ge=0.0, allow_inf_nan=False)
    geometry: Geometry | None = Field(None, description=_GEOM)
    magnitude: float | None = Field(None, allow_inf_nan=False)
    details: dict[str, Any] = Field(default_factory=dict)


class AlertOut(_Out):
    id: str
    site_id: str
    rule: str
    message: str
    key: str
    severity: str
    state: str
    details: dict[str, Any]
    created_at: datetime | None
    version: int


class AlertStateIn(_In):
    state: AlertState
    version: int | None = Field(None, ge=1)


class CandidateOut(_Out):
    id: str
    run_id: str
    geometry: Geometry = Field(description=_GEOM)
    score: float
    rank: int
    state: str
    site_id: str | None
    details: dict[str, Any]
    created_at: datetime | None
    version: int


class TriageIn(_In):
    decision: Literal["accept", "reject", "skip"] = Field(
        description="accept (creates a suspected site), reject or skip"
    )
    version: int = Field(ge=1)
    name: str | None = Field(None, min_length=1, max_length=512, description="name of the new site")


class HistoryOut(_Out):
    seq: int
    at: datetime
    actor: str
    entity: str
    entity_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    site_id: str | None = None


class ChipOut(_Out):
    item: str
    scene: str
    datetime: datetime
    sensor: str
    bands: list[str]
    resolution: float
    cloud_fraction: float | None
    coverage: float | None
    colours: str = Field(
        "",
        description="What the tiles' colours are when not true colour (the false-colour composite)",
    )
    credit: str = Field("", description='Who to credit for its pixels ("Image © ...")')
    tiles: str = Field(description="XYZ tile URL template of this chip")


class ShadowIn(_In):
    site_id: str = Field(min_length=1, max_length=128)
    base: tuple[float, float] = Field(description="[lon, lat] of the foot of the object")
    tip: tuple[float, float] = Field(description="[lon, lat] of the tip of its shadow")
    observation_id: str | None = Field(None, max_length=64)
    acquired: datetime | None = Field(None, description="image time, to compute the sun position")
    sun_elevation: float | None = Field(None, gt=0.0, lt=90.0)
    sun_azimuth: float | None = Field(None, ge=0.0, le=360.0)
    sun_elevation_sigma: float = Field(0.1, ge=0.0, le=10.0, description="degrees")
    gsd_m: float | None = Field(None, gt=0.0, le=1000.0, description="pixel size (metres)")
    click_sigma_px: float = Field(1.0, ge=0.0, le=20.0, description="click error per end, pixels")
    feature_id: str | None = Field(None, max_length=64)
    save: bool = Field(False, description="store the result as a height measurement")


class ShadowOut(_Out):
    height_m: float
    uncertainty_m: float
    shadow_length_m: float
    shadow_azimuth_deg: float
    sun_elevation_deg: float
    sun_azimuth_deg: float | None
    sun_source: str
    method: str
    measurement: MeasurementOut | None = None


class DistanceIn(_In):
    site_id: str = Field(min_length=1, max_length=128)
    points: list[tuple[float, float]] = Field(
        min_length=2, max_length=1000, description="[lon, lat] of each clicked point, in order"
    )
    kind: Literal["distance", "length", "width"] = Field(
        "distance", description="what is measured: a distance, a length or a width (a portal's)"
    )
    observation_id: str | None = Field(None, max_length=64)
    acquired: datetime | None = Field(None, description="image time (dates a saved measurement)")
    gsd_m: float | None = Field(None, gt=0.0, le=1000.0, description="pixel size (metres)")
    click_sigma_px: float = Field(1.0, ge=0.0, le=20.0, description="click error per point, pixels")
    feature_id: str | None = Field(None, max_length=64)
    save: bool = Field(False, description="store the result as a measurement")


class DistanceOut(_Out):
    length_m: float
    uncertainty_m: float
    segments_m: list[float]
    azimuth_deg: float = Field(description="of the first segment, from true north")
    method: str
    measurement: MeasurementOut | None = None


class FeatureSizeIn(_In):
    feature_id: str = Field(min_length=1, max_length=64)
    height_m: float | None = Field(
        None,
        ge=0.0,
        le=2000.0,
        description="height for the volume (default: the height stored last for the feature, "
        "else its height_m attribute)",
    )
    height_sigma_m: float | None = Field(None, ge=0.0, le=1000.0)
    crest_width_m: float = Field(0.0, ge=0.0, le=1000.0)
    position_sigma_m: float = Field(0.0, ge=0.0, le=100.0, description="vertex error (m)")
    save: bool = Field(False, description="store the results as measurements of the feature")


class FeatureSizeOut(_Out):
    feature_id: str
    area: dict[str, Any] | None = Field(None, description="m2 (polygons)")
    length: dict[str, Any] | None = Field(None, description="m (lines: along; polygons: perimeter)")
    volume: dict[str, Any] | None = Field(None, description="m3 (polygons with a height)")
    height_from: str | None = None
    measurements: list[MeasurementOut] = Field(default_factory=list)


class ReportRequest(_In):
    format: Literal["geojson", "kml", "gpkg", "csv", "layers", "brief", "brief-pdf"] = Field(
        "geojson",
        description="sites as geojson/kml/gpkg/csv; 'layers': the sites' features and change "
        "polygons as one GeoJSON FeatureCollection; 'brief' / 'brief-pdf': the brief of one site "
        "(self-contained HTML or PDF, with figures from its archived imagery)",
    )
    site_ids: list[str] | None = Field(None, max_length=10000, description="default: every site")


class ReportJobOut(_Out):
    id: str
    format: str
    state: Literal["queued", "running", "done", "failed"]
    progress: float
    message: str
    download: str | None


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class MeOut(_Out):
    username: str
    role: str
    csrf: str | None = Field(None, description="the token to send in X-CSRF-Token")


class UserOut(_Out):
    username: str
    role: str
    created_at: datetime | None
    created_by: str


class UserIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["viewer", "analyst", "admin"] = "viewer"


class TokenOut(_Out):
    id: str
    name: str
    token: str = Field(description="the secret, shown only once")


class MissileClassOut(_Out):
    """A missile class of the range table, with where its ranges come from."""

    id: str
    name: str
    max_range_km: float
    min_range_km: float
    type: str
    source: str
    source_url: str
    notes: str


class ConfigOut(_Out):
    basemap_url: str | None
    basemap_attribution: str
    categories: list[str]
    statuses: list[str]
    feature_kinds: list[str]
    measurement_kinds: list[str]
    phases: list[str]
    report_formats: list[str]
    mensuration: str = Field(description="which shadow-height implementation is in use")
