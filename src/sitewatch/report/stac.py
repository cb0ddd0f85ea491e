"""A STAC collection of the products derived for a site: briefs, figures, KMZ, GIS files, time-lapses.

One item per product, its file as the ``data`` asset (relative href when the file lies under the
collection's folder), the site's geometry as the item geometry and the product's date (or the time
it was made) as the item datetime. Written with pystac as a self-contained catalog, so it can be
copied or zipped with its products.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pystac
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ..catalog.models import Site
from ..errors import InputError
from ..files import make_folder

__all__ = ["Product", "media_type", "write_products_collection"]

log = logging.getLogger(__name__)

_MEDIA = {
    ".html": "text/html",
    ".pdf": str(pystac.MediaType.PDF),
    ".png": str(pystac.MediaType.PNG),
    ".svg": "image/svg+xml",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".kmz": "application/vnd.google-earth.kmz",
    ".kml": "application/vnd.google-earth.kml+xml",
    ".geojson": str(pystac.MediaType.GEOJSON),
    ".gpkg": "application/geopackage+sqlite3",
    ".tif": str(pystac.MediaType.COG),
    ".json": str(pystac.MediaType.JSON),
}


def media_type(path: Path) -> str:
    """The media type of a product file by its suffix."""
    return (
        _MEDIA.get(path.suffix.lower())
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )


@dataclass(frozen=True)
class Product:
    """A file derived for a site: what it is, when it shows, where it lies."""

    path: Path
    kind: str
    title: str = ""
    datetime: datetime | None = None
    geometry: BaseGeometry | None = None


def _item_id(site_id: str, product: Product, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{site_id}-{product.kind}-{product.path.stem}").strip(
        "-"
    )
    item_id, n = base, 2
    while item_id in taken:
        item_id, n = f"{base}-{n}", n + 1
    taken.add(item_id)
    return item_id


def write_products_collection(
    outdir: str | Path,
    site: Site,
    products: Sequence[Product],
    *,
    description: str = "",
) -> Path:
    """Write ``outdir/collection.json`` with one item per product; returns its path."""
    root = make_folder(Path(outdir).resolve())
    if not products:
        raise InputError(
            f"no products to catalogue for site {site.id!r}; make a brief or an export first"
        )
    geom = site.aoi if site.aoi is not None else site.point
    now = datetime.now(UTC)
    items = []
    taken: set[str] = set()
    for product in products:
        path = Path(product.path).resolve()
        if not path.is_file():
            raise InputError(f"product file {path} does not exist; write it before cataloguing it")
        g = product.geometry if product.geometry is not None else geom
        when = product.datetime or now
        item = pystac.Item(
            id=_item_id(site.id, product, taken),
            geometry=mapping(g),
            bbox=list(g.bounds),
            datetime=when,
            properties={
                "title": product.title or product.kind.replace("_", " "),
                "sitewatch:site": site.id,
                "sitewatch:product": product.kind,
                "created": now.isoformat().replace("+00:00", "Z"),
            },
        )
        item.add_asset(
            "data",
            pystac.Asset(
                href=str(path),
                media_type=media_type(path),
                roles=["data"],
                title=product.title or path.name,
            ),
        )
        items.append(item)
    times = [i.datetime for i in items if i.datetime is not None]
    collection = pystac.Collection(
        id=f"{site.id}-products",
        title=f"{site.name}: derived products",
        description=description
        or f"Reports, figures and exchange files derived for {site.name} ({site.id}) by sitewatch.",
        extent=pystac.Extent(
            pystac.SpatialExtent([list(geom.bounds)]),
            pystac.TemporalExtent([[min(times), max(times)]]),
        ),
        license="other",
        keywords=["sitewatch", site.category, site.status],
    )
    collection.add_items(items)
    collection.normalize_hrefs(str(root))
    collection.make_all_asset_hrefs_relative()
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    log.info("wrote a STAC collection of %d products to %s", len(items), root)
    return root / "collection.json"
