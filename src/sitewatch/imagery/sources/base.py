"""The :class:`ImagerySource` ABC, the :class:`SearchQuery` it answers, and the :class:`SceneReader`.

A source finds scenes (``search``) and opens them for reading (``open``). Readers and sources are
context managers. Concrete sources: :class:`~sitewatch.imagery.sources.local.LocalSource` (folders of
GeoTIFF/COG) and :class:`~sitewatch.imagery.sources.stac.StacSource` (STAC APIs, static catalogs).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import TracebackType
from typing import Any, Self

import rasterio
from rasterio.errors import RasterioError
from shapely.geometry.base import BaseGeometry

from ...errors import ImageryError, InputError, NoScenesFound, SitewatchError, gdal_text
from ...types import BBox
from ..scene import Scene, normalize_bbox

__all__ = [
    "GDAL_HTTP_OPTIONS",
    "HrefModifier",
    "ImagerySource",
    "SceneReader",
    "SearchQuery",
    "aoi_bbox",
    "find_scenes",
    "open_raster",
    "to_utc",
]

log = logging.getLogger(__name__)

HrefModifier = Callable[[str], str]
"""A hook that rewrites an asset href before it is read (signing URLs of commercial providers)."""

GDAL_HTTP_OPTIONS: dict[str, Any] = {
    "GDAL_HTTP_MAX_RETRY": 4,  # GDAL backs off exponentially between retries
    "GDAL_HTTP_RETRY_DELAY": 0.5,
    "GDAL_HTTP_TIMEOUT": 60,
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
}
"""GDAL settings for reading remote COGs: retries with backoff, no directory listings."""


def to_utc(value: date | datetime | str | None, *, end: bool = False) -> datetime | None:
    """A UTC-aware datetime; a plain date means its start (or its end when ``end``)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) <= 10:
                value = date.fromisoformat(text)
            else:
                value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InputError(f"bad date {text!r}: give YYYY-MM-DD or an ISO datetime") from exc
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    moment = datetime.combine(value, time.min, tzinfo=UTC)
    return moment + timedelta(days=1, microseconds=-1) if end else moment


def aoi_bbox(aoi: BaseGeometry | BBox) -> BBox:
    """The lon/lat bbox (W, S, E, N) of an AOI; ``west > east`` when it crosses the antimeridian."""
    if isinstance(aoi, BaseGeometry):
        if aoi.is_empty:
            raise InputError("the AOI is empty")
        w, s, e, n = aoi.bounds
        if e - w > 180.0 and w >= -180.0 and e <= 180.0:
            # a geometry split at ±180: its parts hug both edges
            xs = [x for x in _lons(aoi)]
            east_part = [x for x in xs if x > 0]
            west_part = [x for x in xs if x <= 0]
            if east_part and west_part:
                return normalize_bbox((min(east_part), s, max(west_part), n))
        return normalize_bbox((w, s, e, n))
    if len(aoi) != 4:
        raise InputError(f"a bbox needs 4 numbers W,S,E,N, got {aoi}")
    return normalize_bbox(aoi)


def _lons(geom: BaseGeometry) -> Iterable[float]:
    import shapely

    return (float(x) for x in shapely.get_coordinates(geom)[:, 0])


@dataclass(frozen=True)
class SearchQuery:
    """What a search asked for; printed when nothing is found."""

    bbox: BBox
    start: datetime | None = None
    end: datetime | None = None
    max_cloud: float | None = None
    sensor: str | None = None
    min_gsd: float | None = None
    max_gsd: float | None = None
    limit: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        aoi: BaseGeometry | BBox,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        *,
        max_cloud: float | None = None,
        sensor: str | None = None,
        min_gsd: float | None = None,
        max_gsd: float | None = None,
        limit: int | None = None,
        **extra: Any,
    ) -> SearchQuery:
        """Validate the arguments of :meth:`ImagerySource.search`."""
        s, e = to_utc(start), to_utc(end, end=True)
        if s and e and e < s:
            raise InputError(f"the search ends ({e.date()}) before it starts ({s.date()})")
        if max_cloud is not None and not 0.0 <= max_cloud <= 100.0:
            raise InputError(f"max cloud cover must be a percentage 0..100, got {max_cloud}")
        return cls(aoi_bbox(aoi), s, e, max_cloud, sensor, min_gsd, max_gsd, limit, extra)

    def matches(self, scene: Scene) -> bool:
        """Whether a scene passes every filter of this query."""
        if not scene.intersects(self.bbox):
            return False
        if self.start and scene.datetime < self.start:
            return False
        if self.end and scene.datetime > self.end:
            return False
        if self.max_cloud is not None and (scene.cloud_cover or 0.0) > self.max_cloud:
            return False
        if self.sensor and self.sensor.lower() not in scene.sensor.lower():
            return False
        if self.min_gsd is not None and scene.gsd is not None and scene.gsd < self.min_gsd:
            return False
        return not (self.max_gsd is not None and scene.gsd is not None and scene.gsd > self.max_gsd)

    def describe(self) -> str:
        """One line naming the bbox, dates and filters."""
        w, s, e, n = self.bbox
        parts = [f"bbox {w:.5f},{s:.5f},{e:.5f},{n:.5f}"]
        if self.start or self.end:
            a = self.start.date().isoformat() if self.start else "..."
            b = self.end.date().isoformat() if self.end else "..."
            parts.append(f"dates {a}..{b}")
        if self.max_cloud is not None:
            parts.append(f"cloud <= {self.max_cloud:g}%")
        if self.sensor:
            parts.append(f"sensor {self.sensor}")
        if self.min_gsd is not None or self.max_gsd is not None:
            parts.append(f"gsd {self.min_gsd or 0:g}..{self.max_gsd or float('inf'):g} m")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "bbox": list(self.bbox),
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "max_cloud": self.max_cloud,
            "sensor": self.sensor,
            "min_gsd": self.min_gsd,
            "max_gsd": self.max_gsd,
        }


def open_raster(href: str, **kwargs: Any) -> Any:
    """Open a raster with rasterio, turning GDAL errors into an :class:`ImageryError` that says why."""
    try:
        ds = rasterio.open(href, **kwargs)
    except RasterioError as exc:
        raise ImageryError(
            f"cannot open {href}: {gdal_text(exc)}. The file may be corrupt, truncated or not a raster; "
            "re-download it or remove it from the source folder"
        ) from exc
    if ds.crs is None and not ds.gcps[0]:
        ds.close()
        raise ImageryError(
            f"{href} has no CRS (no georeferencing), so it cannot be placed on a map; "
            "add one with `gdal_edit.py -a_srs EPSG:<code> FILE` or a sidecar STAC item"
        )
    return ds


class SceneReader:
    """Open the band files of one scene (lazily, once each) inside a scoped GDAL environment."""

    def __init__(
        self,
        scene: Scene,
        *,
        href_modifier: HrefModifier | None = None,
        gdal_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.scene = scene
        self._modify = href_modifier
        self._options = {**GDAL_HTTP_OPTIONS, **(gdal_options or {})}
        self._datasets: dict[tuple[str, int | None], Any] = {}
        self._env: rasterio.Env | None = None

    def __enter__(self) -> Self:
        self._env = rasterio.Env(**self._options)
        self._env.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every open dataset and leave the GDAL environment."""
        for ds in self._datasets.values():
            ds.close()
        self._datasets.clear()
        if self._env is not None:
            self._env.__exit__(None, None, None)
            self._env = None

    def href(self, band: str) -> str:
        """The href to read for ``band``, after the source's href hook."""
        try:
            href = self.scene.assets[band]
        except KeyError:
            raise ImageryError(
                f"scene {self.scene.id!r} has no band {band!r}; it has: "
                f"{', '.join(self.scene.bands)}"
            ) from None
        return self._modify(href) if self._modify else href

    def dataset(self, band: str, overview_level: int | None = None) -> Any:
        """The open rasterio dataset holding ``band`` (its band index: ``scene.band_index``)."""
        href = self.href(band)
        key = (href, overview_level)
        if key not in self._datasets:
            kwargs = {"overview_level": overview_level} if overview_level is not None else {}
            self._datasets[key] = open_raster(href, **kwargs)
        return self._datasets[key]


class ImagerySource(ABC):
    """A place where scenes are found and read. Use as a context manager."""

    kind: str = "abstract"
    credit: str | None = None
    """Who figures credit for this source's images ("Image © ..."; ``credit`` in its
    configuration); None: each scene's own (:func:`~sitewatch.imagery.scene.scene_credit`)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.kind

    @abstractmethod
    def search(
        self,
        aoi: BaseGeometry | BBox,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        **filters: Any,
    ) -> list[Scene]:
        """Scenes meeting the lon/lat AOI between ``start`` and ``end`` (inclusive), oldest first.

        Filters: ``max_cloud`` (percent), ``sensor`` (substring), ``min_gsd``/``max_gsd`` (m),
        ``limit``. Returns an empty list when nothing matches.
        """

    def open(self, scene: Scene) -> SceneReader:
        """A reader for the scene's band files (a context manager)."""
        return SceneReader(scene)

    def describe(self) -> dict[str, Any]:
        """What this source is, for ``sitewatch imagery sources``."""
        return {"name": self.name, "type": self.kind}

    def explain_empty(self) -> str:
        """Extra words for a search that found nothing (files skipped and why)."""
        return ""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and caches."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def find_scenes(
    sources: Iterable[ImagerySource],
    aoi: BaseGeometry | BBox,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    **filters: Any,
) -> list[tuple[ImagerySource, Scene]]:
    """Search several sources; raise :class:`NoScenesFound` saying what was searched if none match.

    A source that cannot be searched (a STAC server out of reach, a catalog file gone) is left
    out with a warning while another source answers, so that an offline machine still finds the
    scenes of its local folders; when no source can be searched, the first one's error is raised.
    """
    query = SearchQuery.build(aoi, start, end, **filters)
    found: list[tuple[ImagerySource, Scene]] = []
    searched: list[ImagerySource] = []
    failed: list[tuple[ImagerySource, SitewatchError]] = []
    for source in sources:
        try:
            scenes = source.search(aoi, start, end, **filters)
        except NoScenesFound:
            scenes = []
        except SitewatchError as exc:
            failed.append((source, exc))
            continue
        searched.append(source)
        found.extend((source, scene) for scene in scenes)
    if failed and not searched:
        raise failed[0][1]
    for source, error in failed:
        log.warning("left out source %s, which cannot be searched: %s", source.name, error)
    if not found:
        names = ", ".join(s.name for s in searched) or "no source"
        notes = "".join(f"; {s.name}: {n}" for s in searched if (n := s.explain_empty()))
        notes += "".join(f"; {s.name} could not be searched: {e}" for s, e in failed)
        raise NoScenesFound(
            f"no scenes found in {names} for {query.describe()}{notes}. "
            "Widen the dates or the AOI, relax --max-cloud, or add a source "
            "(`sitewatch imagery sources` lists them)"
        )
    found.sort(key=lambda pair: (pair[1].datetime, pair[1].id))
    return found
