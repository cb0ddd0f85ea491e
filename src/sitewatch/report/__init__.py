"""Reports and exchange: annotated figures, site briefs (HTML/PDF), time-lapses, KMZ, GIS files, STAC.

Typical use::

    from sitewatch.report import write_site_brief

    with Catalog() as cat:
        files = write_site_brief(cat, "sino-ri", "out/", chips=archive.list("sino-ri"))
"""

from __future__ import annotations

import logging

from ._cartography import ScaleBar, ground_metres_per_unit, nice_length, north_angle, scale_bar
from ._imagery import ImageChip, Stretch, as_image_chip, percentile_stretch, to_rgb
from .brief import (
    BriefFigure,
    ChangePair,
    SiteData,
    gather_site,
    html_to_pdf,
    render_site_html,
    write_catalog_report,
    write_site_brief,
)
from .exports import Row, site_layers, write_geojson, write_gpkg, write_layers
from .figures import (
    FEATURE_COLOURS,
    Annotation,
    FigureLayout,
    activity_figure,
    annotated_figure,
    before_after_figure,
    save_figure,
)
from .kmz import site_kml, write_site_kmz
from .stac import Product, write_products_collection
from .timelapse import write_timelapse

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "FEATURE_COLOURS",
    "Annotation",
    "BriefFigure",
    "ChangePair",
    "FigureLayout",
    "ImageChip",
    "Product",
    "Row",
    "ScaleBar",
    "SiteData",
    "Stretch",
    "activity_figure",
    "annotated_figure",
    "as_image_chip",
    "before_after_figure",
    "gather_site",
    "ground_metres_per_unit",
    "html_to_pdf",
    "nice_length",
    "north_angle",
    "percentile_stretch",
    "render_site_html",
    "save_figure",
    "scale_bar",
    "site_kml",
    "site_layers",
    "to_rgb",
    "write_catalog_report",
    "write_geojson",
    "write_gpkg",
    "write_layers",
    "write_products_collection",
    "write_site_brief",
    "write_site_kmz",
    "write_timelapse",
]
