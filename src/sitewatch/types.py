"""Shared type aliases and the closed vocabularies of the catalog."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ACTIVITY_PHASES",
    "ALERT_STATES",
    "CANDIDATE_STATES",
    "FEATURE_KINDS",
    "MEASUREMENT_KINDS",
    "SITE_CATEGORIES",
    "SITE_STATUSES",
    "ActivityPhase",
    "AlertState",
    "BBox",
    "CandidateState",
    "FeatureKind",
    "LonLat",
    "MeasurementKind",
    "SiteCategory",
    "SiteStatus",
]

BBox = tuple[float, float, float, float]
"""(west, south, east, north) in degrees (EPSG:4326), or in the units of a stated CRS."""

LonLat = tuple[float, float]

SiteStatus = Literal["suspected", "confirmed", "inactive", "dismantled"]
SiteCategory = Literal[
    "missile_operating_base",
    "launch_facility",
    "missile_production",
    "nuclear",
    "air_base",
    "naval_base",
    "air_defence",
    "command",
    "storage",
    "test_site",
    "other",
]
FeatureKind = Literal[
    "ugf_portal",
    "berm",
    "drive_through_shelter",
    "hq",
    "barracks",
    "revetment",
    "road",
    "support",
    "launch_pad",
    "building",
    "spoil",
    "fence",
    "other",
]
ActivityPhase = Literal[
    "no_activity", "site_preparation", "active_construction", "post_construction"
]
MeasurementKind = Literal[
    "height", "length", "distance", "width", "area", "volume", "azimuth", "defilade"
]
AlertState = Literal["new", "acked", "dismissed"]
CandidateState = Literal["pending", "accepted", "rejected", "skipped"]

SITE_STATUSES: tuple[str, ...] = get_args(SiteStatus)
SITE_CATEGORIES: tuple[str, ...] = get_args(SiteCategory)
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)
ACTIVITY_PHASES: tuple[str, ...] = get_args(ActivityPhase)
MEASUREMENT_KINDS: tuple[str, ...] = get_args(MeasurementKind)
ALERT_STATES: tuple[str, ...] = get_args(AlertState)
CANDIDATE_STATES: tuple[str, ...] = get_args(CandidateState)

CHANGE_METHODS: tuple[str, ...] = ("cva", "irmad", "pca_kmeans", "log_ratio", "ndvi", "ndbi", "bsi")
"""Change detection methods (:mod:`sitewatch.analysis.change`), here so that the CLI can offer
them without importing the analysis."""
CHANGE_THRESHOLDS: tuple[str, ...] = ("mad", "otsu", "kmeans", "chi2", "fixed")
CHANGE_NORMALISATIONS: tuple[str, ...] = ("zscore", "invariant", "none")
