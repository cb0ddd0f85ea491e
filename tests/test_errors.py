"""Error helpers."""

from __future__ import annotations

from sitewatch.errors import gdal_text


def test_gdal_text_quotes_the_chained_gdal_message() -> None:
    exc = RuntimeError("Read failed. See previous exception for details.")
    exc.__cause__ = OSError("cut.tif, band 1: IReadBlock failed at X offset 0.")
    assert gdal_text(exc) == "cut.tif, band 1: IReadBlock failed at X offset 0"
    plain = ValueError("not recognized as a supported file format")
    assert gdal_text(plain) == "not recognized as a supported file format"
    alone = RuntimeError("See previous exception for details.")  # nothing chained: keep it
    assert gdal_text(alone) == "See previous exception for details"
