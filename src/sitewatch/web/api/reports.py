"""``/api/reports``: report and export jobs, their progress (server-sent events) and downloads.

A job runs in a worker thread; ``GET /api/reports/{id}/events`` streams its progress as
``text/event-stream`` (``event: progress`` lines, then ``event: done`` or ``event: failed``), and
``GET /api/reports/{id}/download`` returns the file. Jobs and files live as long as the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from ...catalog.models import SiteRecord
from ...catalog.store import Catalog
from ...errors import InputError, NotFound, SitewatchError
from ..deps import Ctx, Viewer
from ..users import has_role
from ._convert import json_response
from .schemas import ReportJobOut, ReportRequest

__all__ = ["ReportJob", "ReportJobs", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/reports", tags=["reports"])

_SUFFIX = {
    "geojson": "geojson",
    "kml": "kml",
    "gpkg": "gpkg",
    "csv": "csv",
    "layers": "geojson",
    "brief": "html",
    "brief-pdf": "pdf",
}
_MAX_BRIEF_CHIPS = 6
_MEDIA = {
    "html": "text/html",
    "pdf": "application/pdf",
    "geojson": "application/geo+json",
    "kml": "application/vnd.google-earth.kml+xml",
    "gpkg": "application/geopackage+sqlite3",
    "csv": "text/csv",
}
Progress = Callable[[float, str], None]


@dataclass
class ReportJob:
    """One report being made."""

    id: str
    owner: str
    format: str
    site_ids: list[str] | None
    state: Literal["queued", "running", "done", "failed"] = "queued"
    progress: float = 0.0
    message: str = "queued"
    path: Path | None = None
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "format": self.format,
            "state": self.state,
            "progress": round(self.progress, 3),
            "message": self.message,
            "download": f"/api/reports/{self.id}/download" if self.state == "done" else None,
        }


def _records(cat: Catalog, site_ids: list[str] | None, progress: Progress) -> list[SiteRecord]:
    sites = [cat.get_site(i) for i in site_ids] if site_ids is not None else cat.query_sites()
    sources = {s.id: s for s in cat.list_sources()}
    records = []
    for n, site in enumerate(sites, start=1):
        feats = tuple(cat.query_features(site_id=site.id))
        obs = tuple(cat.list_observations(site.id))
        srcs = tuple(sources[i] for i in site.source_ids if i in sources)
        ms = tuple(cat.list_measurements(site_id=site.id))
        records.append(
            SiteRecord(site=site, features=feats, observations=obs, sources=srcs, measurements=ms)
        )
        progress(0.8 * n / max(1, len(sites)), f"read {n} of {len(sites)} sites")
    return records


def _brief(
    cat: Catalog,
    job: ReportJob,
    dest: Path,
    chips: list[Any],
    progress: Progress,
    dem: Path | None = None,
) -> None:
    from ...report.brief import write_site_brief

    if not job.site_ids or len(job.site_ids) != 1:
        raise InputError("a brief is about one site: give exactly one id in site_ids")
    site_id = job.site_ids[0]
    progress(0.1, f"drawing the figures of {site_id} ({len(chips)} image(s))")
    kind = "pdf" if job.format == "brief-pdf" else "html"
    written = write_site_brief(
        cat, site_id, dest.parent / f"{job.id}-brief", chips=chips, formats=(kind,), stac=False,
        dem=dem, dem_required=False,  # the server's one DEM need not reach every site
    )  # fmt: skip
    progress(0.95, "brief written")
    written[kind].replace(dest)


def _write(
    cat: Catalog,
    job: ReportJob,
    dest: Path,
    progress: Progress,
    chips: list[Any],
    dem: Path | None = None,
) -> None:
    if job.format in ("brief", "brief-pdf"):
        _brief(cat, job, dest, chips, progress, dem)
        return
    if job.format == "layers":
        from ...report.exports import site_layers, write_layers

        sites = job.site_ids if job.site_ids is not None else [s.id for s in cat.query_sites()]
        feats: list[Any] = []
        changes: list[Any] = []
        for n, sid in enumerate(sites, start=1):
            cat.get_site(sid)
            feats += cat.query_features(site_id=sid)
            changes += [c for c in cat.list_change_events(sid) if c.geometry is not None]
            progress(0.8 * n / max(1, len(sites)), f"read {n} of {len(sites)} sites")
        write_layers(site_layers(feats, changes), dest)
        return
    from ...catalog.io import write_sites

    records = _records(cat, job.site_ids, progress)
    progress(0.85, f"writing {len(records)} sites as {job.format}")
    write_sites(records, dest, job.format)


class ReportJobs:
    """The jobs of one server: a small thread pool and their state."""

    def __init__(
        self,
        catalog: Catalog,
        workdir: Path,
        *,
        chips: Callable[[str], list[Any]] | None = None,
        workers: int = 2,
        dem: Path | None = None,
    ) -> None:
        self._catalog = catalog
        self._chips = chips
        self._dem = dem  # the server's DEM: briefs get a Terrain section
        self._dir = workdir / "reports"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, ReportJob] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report")

    def submit(self, owner: str, req: ReportRequest) -> ReportJob:
        if req.format.startswith("brief") and (not req.site_ids or len(req.site_ids) != 1):
            raise InputError("a brief is about one site: give exactly one id in site_ids")
        job = ReportJob(secrets.token_hex(8), owner, req.format, req.site_ids)
        if req.site_ids is not None:  # fail fast on unknown sites
            for sid in req.site_ids:
                self._catalog.get_site(sid)
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str, who: str, role: str) -> ReportJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or (job.owner != who and not has_role(role, "admin")):
            raise NotFound(f"no report job {job_id!r}")
        return job

    def _update(self, job: ReportJob, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(job, k, v)
            job.seq += 1

    def _run(self, job: ReportJob) -> None:
        dest = self._dir / f"{job.id}.{_SUFFIX[job.format]}"
        self._update(job, state="running", message="started")
        try:
            chips: list[Any] = []
            if job.format.startswith("brief") and job.site_ids and self._chips is not None:
                chips = self._chips(job.site_ids[0])[-_MAX_BRIEF_CHIPS:]
            _write(
                self._catalog,
                job,
                dest,
                lambda frac, msg: self._update(job, progress=frac, message=msg),
                chips,
                self._dem,
            )
        except (SitewatchError, OSError, ImportError) as exc:
            log.warning("report %s failed: %s", job.id, exc)
            self._update(job, state="failed", message=str(exc))
            return
        self._update(job, state="done", progress=1.0, message="ready", path=dest)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _jobs(request: Request) -> ReportJobs:
    jobs: ReportJobs = request.app.state.report_jobs
    return jobs


@router.post("", response_model=ReportJobOut, status_code=202, summary="Start a report")
def start_report(body: ReportRequest, request: Request, _ctx: Ctx, who: Viewer) -> Response:
    """Start making a report; follow ``/events`` and fetch ``/download`` when done."""
    job = _jobs(request).submit(who.username, body)
    return json_response(job.to_dict(), 202)


@router.get("/{job_id}", response_model=ReportJobOut, summary="State of a report job")
def report_state(job_id: str, request: Request, who: Viewer) -> Response:
    return json_response(_jobs(request).get(job_id, who.username, who.user.role).to_dict())


@router.get(
    "/{job_id}/events",
    summary="Progress of a report job (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def report_events(job_id: str, request: Request, who: Viewer) -> StreamingResponse:
    job = _jobs(request).get(job_id, who.username, who.user.role)

    async def stream() -> AsyncIterator[str]:
        seen = -1
        yield "retry: 1000\n\n"
        while True:
            if job.seq != seen:
                seen = job.seq
                data = json.dumps(job.to_dict())
                event = job.state if job.state in ("done", "failed") else "progress"
                yield f"event: {event}\ndata: {data}\n\n"
                if event != "progress":
                    return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.1)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get(
    "/{job_id}/download",
    summary="Download a finished report",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_report(job_id: str, request: Request, who: Viewer) -> FileResponse:
    job = _jobs(request).get(job_id, who.username, who.user.role)
    if job.state != "done" or job.path is None:
        raise NotFound(f"report {job_id!r} is {job.state}, not ready to download")
    suffix = _SUFFIX[job.format]
    return FileResponse(
        job.path,
        media_type=_MEDIA.get(suffix, "application/octet-stream"),
        filename=f"sitewatch-{job.format}-{job.id}.{suffix}",
    )
