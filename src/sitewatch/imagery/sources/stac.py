"""StacSource: scenes from STAC APIs (pystac-client) and static STAC catalogs (pystac).

Items become :class:`~sitewatch.imagery.scene.Scene` values with bands by common name (``eo:bands``
common names, or asset keys such as ``red``/``B04``/``SR_B4``). Commercial providers that need signed
URLs plug in ``sign`` (rewrites each asset href before reading) and ``request_modifier`` (changes each
API request, e.g. adds an authorisation header or a signature).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pystac
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry
from urllib3.util.retry import Retry

from ...errors import ImageryError, SourceError
from ...network import check_url
from ...types import BBox
from ..scene import Scene, scene_from_item
from .base import HrefModifier, ImagerySource, SceneReader, SearchQuery

__all__ = ["StacSource"]

log = logging.getLogger(__name__)

_HEADERS_RE = re.compile(r"Headers: .*?(?= Payload: | Timeout: |$)", re.S)


class _RedactHeaders(logging.Filter):
    """pystac-client logs each request with its headers at DEBUG: API keys and signatures too."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "Headers:" in text:
            record.msg = _HEADERS_RE.sub("Headers: <redacted by sitewatch>", text)
            record.args = ()
        return True


logging.getLogger("pystac_client.stac_api_io").addFilter(_RedactHeaders())


def _is_static(href: str) -> bool:
    if "://" not in href or href.startswith("file://"):
        return True
    return href.split("?")[0].endswith(".json")


class StacSource(ImagerySource):
    """A STAC API (``https://.../v1`` + ``collections``) or a static catalog (``catalog.json``).

    ``static`` forces the kind (by default a local path or a ``.json`` URL is a static catalog).
    ``timeout`` (s) and ``retries`` (with exponential ``backoff``) apply to API requests.
    HTTP(S) URLs (the API, a remote static catalog, the asset hrefs of its items) must resolve to
    public addresses (:func:`sitewatch.network.check_url`) unless ``allow_private`` is set, for a
    server on the analyst's own network configured on purpose.
    """

    kind = "stac"

    def __init__(
        self,
        href: str | Path,
        *,
        collections: Sequence[str] | None = None,
        static: bool | None = None,
        sign: HrefModifier | None = None,
        request_modifier: Callable[[Any], Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        page_size: int = 100,
        max_items: int = 2000,
        name: str | None = None,
        allow_private: bool = False,
    ) -> None:
        self.href = str(href)
        self.allow_private = allow_private
        self.static = _is_static(self.href) if static is None else static
        super().__init__(name or Path(self.href.rstrip("/")).name or self.href)
        self.kind = "stac-static" if self.static else "stac-api"
        self.collections = list(collections) if collections else None
        self.sign = sign
        self.request_modifier = request_modifier
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.page_size = page_size
        self.max_items = max_items
        self._client: Any = None
        self._items: list[Scene] | None = None
        self.skipped: list[tuple[str, str]] = []

    def describe(self) -> dict[str, Any]:
        """Name, type, URL or path, collections."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        out["path" if self.static else "url"] = self.href
        if self.collections:
            out["collections"] = self.collections
        return out

    def open(self, scene: Scene) -> SceneReader:
        """A reader whose hrefs pass through the ``sign`` hook and the private-address guard."""
        return SceneReader(scene, href_modifier=self._asset_href)

    def _check(self, url: str, what: str, *, only_http: bool = False) -> None:
        """Refuse URLs to internal addresses (and catalogs by other schemes than HTTP(S))."""
        if "://" not in url or url.startswith("file://"):
            return  # a local file
        if only_http and url.split("://", 1)[0].lower() not in ("http", "https"):
            return  # s3:// and the like: GDAL reaches them through the provider, not by address
        check_url(url, allow_private=self.allow_private, what=f"{what} of source {self.name!r}")

    def _asset_href(self, href: str) -> str:
        out = self.sign(href) if self.sign is not None else href
        self._check(out, "asset URL", only_http=True)
        return out

    def search(
        self,
        aoi: BaseGeometry | BBox,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        **filters: Any,
    ) -> list[Scene]:
        """Items meeting the AOI, dates and filters, as scenes, oldest first."""
        query = SearchQuery.build(aoi, start, end, **filters)
        scenes = self._search_static(query) if self.static else self._search_api(query)
        scenes.sort(key=lambda s: (s.datetime, s.id))
        return scenes[: query.limit] if query.limit else scenes

    def explain_empty(self) -> str:
        """Items skipped while reading, if any."""
        if not self.skipped:
            return ""
        shown = "; ".join(f"{i}: {why}" for i, why in self.skipped[:3])
        return f"{len(self.skipped)} item(s) skipped ({shown})"

    def close(self) -> None:
        """Drop the HTTP session."""
        if self._client is not None:
            session = getattr(self._client._stac_io, "session", None)
            if session is not None:
                session.close()
            self._client = None

    # --- static catalogs --------------------------------------------------------------------

    def _load_static(self) -> list[Scene]:
        if self._items is not None:
            return self._items
        href = self.href.removeprefix("file://")
        path = Path(href)
        if "://" not in href and path.is_dir():
            candidates = [path / "catalog.json", path / "collection.json"]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise ImageryError(
                    f"{path} has no catalog.json or collection.json; give the path of the "
                    "static STAC catalog file"
                )
            href = str(found)
        self._check(href, "static STAC catalog URL")
        try:
            root = pystac.read_file(href)
        except FileNotFoundError as exc:
            raise ImageryError(f"static STAC catalog {href} does not exist") from exc
        except Exception as exc:  # pystac raises JSON, schema and HTTP errors
            raise ImageryError(f"cannot read the static STAC catalog {href}: {exc}") from exc
        items: list[pystac.Item]
        if isinstance(root, pystac.Item):
            items = [root]
        elif isinstance(root, pystac.Catalog):
            items = list(root.get_items(recursive=True))
        else:
            raise ImageryError(f"{href} is not a STAC catalog, collection or item")
        scenes: list[Scene] = []
        self.skipped = []
        for item in items:
            if self.collections and item.collection_id not in self.collections:
                continue
            try:
                scenes.append(scene_from_item(item))
            except ImageryError as exc:
                self.skipped.append((item.id, str(exc)))
                log.warning("skipping STAC item %s: %s", item.id, exc)
        self._items = scenes
        return scenes

    def _search_static(self, query: SearchQuery) -> list[Scene]:
        return [s for s in self._load_static() if query.matches(s)]

    # --- STAC APIs ----------------------------------------------------------------------------

    def _open_client(self) -> Any:
        if self._client is not None:
            return self._client
        self._check(self.href, "STAC API URL")
        from pystac_client import Client
        from pystac_client.exceptions import APIError
        from pystac_client.stac_api_io import StacApiIO

        retry = Retry(
            total=self.retries,
            backoff_factor=self.backoff,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None,
            raise_on_status=False,
        )
        stac_io = StacApiIO(
            headers=self.headers,
            request_modifier=self.request_modifier,
            timeout=self.timeout,
            max_retries=retry,
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # servers that omit conformsTo still search
                self._client = Client.open(
                    self.href,
                    headers=self.headers,
                    request_modifier=self.request_modifier,
                    stac_io=stac_io,
                    timeout=self.timeout,
                )
        except (APIError, OSError, ValueError) as exc:
            raise SourceError(self._api_message("cannot open", exc)) from exc
        return self._client

    def _api_message(self, what: str, exc: BaseException) -> str:
        text = str(exc).strip() or type(exc).__name__
        if len(text) > 300:
            text = text[:300] + "..."
        low = text.lower()
        hint = "check the URL and your network, or try again later"
        if "timed out" in low or "timeout" in low:
            hint = f"the server did not answer within {self.timeout:g} s; try again later"
        elif "401" in low or "403" in low or "unauthor" in low or "forbidden" in low:
            hint = "the server refused the credentials; check the headers or signing hook"
        return f"STAC API {self.href} ({self.name}): {what}: {text}; {hint}"

    def _search_api(self, query: SearchQuery) -> list[Scene]:
        from pystac_client.exceptions import APIError

        client = self._open_client()
        w, s, e, n = query.bbox
        kwargs: dict[str, Any] = {
            "collections": self.collections,
            "limit": self.page_size,
            "max_items": min(query.limit or self.max_items, self.max_items),
        }
        if w <= e:
            kwargs["bbox"] = [w, s, e, n]
        else:  # across the antimeridian: search both halves as one multipolygon
            from shapely.geometry import MultiPolygon

            kwargs["intersects"] = mapping(MultiPolygon([box(w, s, 180, n), box(-180, s, e, n)]))
        if query.start or query.end:
            a = query.start.isoformat().replace("+00:00", "Z") if query.start else ".."
            b = query.end.isoformat().replace("+00:00", "Z") if query.end else ".."
            kwargs["datetime"] = f"{a}/{b}"
        if query.max_cloud is not None:
            kwargs["query"] = {"eo:cloud_cover": {"lte": query.max_cloud}}
        scenes: list[Scene] = []
        self.skipped = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                search = client.search(**kwargs)
                for item in search.items():
                    try:
                        scene = scene_from_item(item)
                    except ImageryError as exc:
                        self.skipped.append((item.id, str(exc)))
                        continue
                    if query.matches(scene):
                        scenes.append(scene)
        except APIError as exc:
            raise SourceError(self._api_message("search failed", exc)) from exc
        except (OSError, ValueError) as exc:
            raise SourceError(self._api_message("search failed", exc)) from exc
        return scenes
