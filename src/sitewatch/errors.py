"""The one exception hierarchy of sitewatch.

Every exception raised on purpose by sitewatch derives from :class:`SitewatchError`. Subclasses also
inherit the builtin that describes them best (``SiteNotFound`` is a ``LookupError``), so callers can
catch either. Messages are built from the failing data and say how to fix the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AnalysisError",
    "ArchiveError",
    "AuthError",
    "ConfigError",
    "ConflictError",
    "CoordinateError",
    "DuplicateError",
    "GeometryError",
    "ImageryError",
    "ImportFormatError",
    "InputError",
    "MissingExtraError",
    "NoScenesFound",
    "NotFound",
    "RecordProblem",
    "SiteNotFound",
    "SitewatchError",
    "SourceError",
    "UnsafeInputError",
    "gdal_text",
]


class SitewatchError(Exception):
    """Root of every error sitewatch raises on purpose."""


class ConfigError(SitewatchError, ValueError):
    """A setting or configuration file is wrong."""


class InputError(SitewatchError, ValueError):
    """A value given by the user is invalid."""


class CoordinateError(InputError):
    """A longitude or latitude is out of range."""


class GeometryError(InputError):
    """A geometry is invalid, empty or of the wrong type."""


class UnsafeInputError(InputError):
    """An input file tries something dangerous (XML external entities, entity expansion)."""


@dataclass(frozen=True)
class RecordProblem:
    """One bad record in an input file: where it is and what is wrong with it."""

    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "record"
        return f"{where}: {self.reason}"


class ImportFormatError(InputError):
    """An input file has bad records; nothing was imported."""

    def __init__(self, path: str, problems: Sequence[RecordProblem], *, hint: str = "") -> None:
        self.path = path
        self.problems = tuple(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:20])
        more = len(self.problems) - 20
        extra = f"\n  ... and {more} more" if more > 0 else ""
        tail = f"\n{hint}" if hint else ""
        super().__init__(
            f"{path}: {len(self.problems)} invalid record(s), nothing was imported:\n{shown}{extra}{tail}"
        )


class NotFound(SitewatchError, LookupError):
    """A catalog record does not exist."""


class SiteNotFound(NotFound):
    """No site has the given id."""

    def __init__(self, site_id: str) -> None:
        self.site_id = site_id
        super().__init__(
            f"no site with id {site_id!r} in the catalog; `sitewatch sites list` shows the ids"
        )


class DuplicateError(SitewatchError, ValueError):
    """A record with the same id already exists."""


class ConflictError(SitewatchError, RuntimeError):
    """Optimistic concurrency: the record changed since it was read."""


class MissingExtraError(SitewatchError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        self.package = package
        self.extra = extra
        why = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package} is needed{why} but is not installed; "
            f"install it with: pip install 'sitewatch[{extra}]'"
        )


class ImageryError(SitewatchError, OSError):
    """An image cannot be read or is unusable (corrupt, no CRS, outside the AOI)."""


class NoScenesFound(SitewatchError, LookupError):
    """A search returned no scenes."""


class SourceError(SitewatchError, OSError):
    """An imagery source (STAC API, HTTP server) failed or timed out."""


class ArchiveError(SitewatchError, OSError):
    """The local imagery archive cannot be read or written."""


class AnalysisError(SitewatchError, ValueError):
    """An analysis cannot run on the given inputs."""


class AuthError(SitewatchError, PermissionError):
    """Authentication failed or the user lacks the role for an action."""


def gdal_text(exc: BaseException) -> str:
    """What went wrong in ``exc`` from rasterio, in GDAL's own words.

    rasterio raises a read failure as "Read failed. See previous exception for details." with
    GDAL's message (the file, band and block that failed) only on the chained exception; a
    message for a user quotes that one. A closing full stop is dropped, since the message goes on.
    """
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and "previous exception" in text and str(cause):
        text = str(cause)
    return text.rstrip(". ")
