"""Broad-area search: find places that look like known sites over a whole country.

``tiles`` cuts the AOI into overlapping tiles, ``features`` describes them, ``model`` scores them
from a few examples, ``candidates`` turns scores into ranked polygons, ``run`` is the job on
dask, ``triage`` the interactive review and ``evaluate`` the planted-signature evaluation.
"""

from __future__ import annotations

import logging

from .candidates import RankedCandidate, make_candidates, non_max_suppression, to_geojson
from .features import BandScale, FeatureConfig, block_features, estimate_scale, feature_names
from .model import SearchModel, fit_model
from .run import SearchParams, SearchResult, run_search
from .tiles import Block, Tile, TileGrid, build_vrt, iter_tiles

__all__ = [
    "BandScale",
    "Block",
    "FeatureConfig",
    "RankedCandidate",
    "SearchModel",
    "SearchParams",
    "SearchResult",
    "Tile",
    "TileGrid",
    "block_features",
    "build_vrt",
    "estimate_scale",
    "feature_names",
    "fit_model",
    "iter_tiles",
    "make_candidates",
    "non_max_suppression",
    "run_search",
    "to_geojson",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
