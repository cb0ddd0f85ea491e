"""``/api/candidates``: the triage queue of broad-area search results."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...catalog.models import Candidate, Site, slugify
from ...catalog.store import Catalog
from ...errors import NotFound, SiteNotFound
from ...types import CandidateState
from ..deps import Analyst, Ctx, Viewer
from ._convert import json_response
from .schemas import CandidateOut, TriageIn

__all__ = ["router"]

router = APIRouter(prefix="/api/candidates", tags=["candidates"])

_STATE = {"accept": "accepted", "reject": "rejected", "skip": "skipped"}


@router.get("", response_model=list[CandidateOut], summary="List candidates")
def list_candidates(
    ctx: Ctx,
    _: Viewer,
    state: CandidateState | None = None,
    run_id: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    """Candidates by rank (best first)."""
    return json_response(ctx.reader.list_candidates(run_id=run_id, state=state))


def _get(cat: Catalog, candidate_id: str) -> Candidate:
    try:
        return cat.get_candidate(candidate_id)
    except NotFound as exc:
        raise NotFound(
            f"no candidate with id {candidate_id!r}; GET /api/candidates lists them"
        ) from exc


@router.get("/{candidate_id}", response_model=CandidateOut, summary="Read a candidate")
def get_candidate(candidate_id: str, ctx: Ctx, _: Viewer) -> Response:
    return json_response(_get(ctx.reader, candidate_id))


@router.get(
    "/{candidate_id}/chip.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="The image of a candidate",
)
def candidate_chip(candidate_id: str, ctx: Ctx, _: Viewer) -> Response:
    """The candidate's tile with a tile of context around it, outlined, as ``search triage``
    shows it: read from its search run's image, whose run folder must be on this server."""
    from ...search._runstore import find_run
    from ...search.triage import chip_png

    cand = _get(ctx.reader, candidate_id)
    try:
        run = find_run(cand.run_id)
    except NotFound as exc:
        raise NotFound(
            f"the search run {cand.run_id} is not on this server (its run folder is registered "
            "where `sitewatch search run` ran); triage it there with `sitewatch search triage`"
        ) from exc
    if not 1 <= cand.rank <= len(run.cand_tiles):
        raise NotFound(f"the run folder of {cand.run_id} has no tile for rank {cand.rank}")
    row, col = (int(v) for v in run.cand_tiles[cand.rank - 1])
    headers = {"Cache-Control": "private, max-age=86400"}
    return Response(chip_png(run, row, col), media_type="image/png", headers=headers)


def _free_id(cat: Catalog, base: str) -> str:
    site_id, n = base, 1
    while True:
        try:
            cat.get_site(site_id)
        except SiteNotFound:
            return site_id
        n += 1
        site_id = f"{base}-{n}"


def _site_for(cat: Catalog, cand: Candidate, name: str | None) -> Site:
    point = cand.geometry.representative_point()
    aoi = cand.geometry if cand.geometry.geom_type in ("Polygon", "MultiPolygon") else None
    base = slugify(f"candidate-{cand.run_id}-{cand.rank}") or f"candidate-{cand.id}"
    return Site(
        id=_free_id(cat, base),
        name=name or f"Candidate {cand.rank} of run {cand.run_id}",
        lon=float(point.x),
        lat=float(point.y),
        aoi=aoi,
        status="suspected",
        confidence=cand.score if 0.0 <= cand.score <= 1.0 else None,
        tags=("search-candidate",),
        notes=f"Accepted from search run {cand.run_id} (rank {cand.rank}, score {cand.score:.3g}).",
    )


@router.post("/{candidate_id}/triage", response_model=CandidateOut, summary="Triage a candidate")
def triage(candidate_id: str, body: TriageIn, ctx: Ctx, who: Analyst) -> Response:
    """Accept (the candidate becomes a suspected site, or is linked to the catalogued site it
    lies on), reject or skip a candidate."""
    from ...search.triage import catalogued_site

    cat = ctx.catalog(who)
    with cat.transaction():
        cand = _get(cat, candidate_id)
        site_id, details = cand.site_id, cand.details
        if body.decision == "accept" and site_id is None:
            near = catalogued_site(cat, cand)
            if near is None:
                site_id = cat.add_site(_site_for(cat, cand, body.name)).id
            else:  # linked: the candidate says to which site, and how far it lies
                site, d = near
                site_id = site.id
                mark = {"id": site.id, "name": site.name, "distance_m": round(d, 1)}
                details = {**details, "catalogued_site": mark}
        decided = replace(cand, state=_STATE[body.decision], site_id=site_id, details=details,  # type: ignore[arg-type]
                          version=body.version)  # fmt: skip
        stored = cat.update_candidate(decided)
    return json_response(stored)
