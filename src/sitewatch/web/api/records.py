"""Dated records of a site: ``observations``, ``measurements`` and ``change events``."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from ...catalog.evidence import evidence_references
from ...catalog.models import ChangeEvent, Measurement, Observation, new_id, utcnow
from ..deps import Analyst, Ctx, Viewer
from ._convert import cached_json, geometry, json_response, patch_fields
from .schemas import (
    ChangeEventIn,
    ChangeEventOut,
    MeasuredChangeOut,
    MeasurementIn,
    MeasurementOut,
    ObservationIn,
    ObservationOut,
    ObservationPatch,
)

__all__ = ["MEASUREMENTS_CHOICE", "router"]

router = APIRouter()


@router.get(
    "/api/sites/{site_id}/observations",
    response_model=list[ObservationOut],
    tags=["observations"],
    summary="Observations of a site",
)
async def list_observations(site_id: str, request: Request, ctx: Ctx, _: Viewer) -> Response:
    def compute() -> object:
        ctx.reader.get_site(site_id)
        return ctx.reader.list_observations(site_id)

    return await cached_json(ctx, request, compute)


@router.post(
    "/api/sites/{site_id}/observations",
    response_model=ObservationOut,
    status_code=201,
    tags=["observations"],
    summary="Record an observation",
)
def add_observation(site_id: str, body: ObservationIn, ctx: Ctx, who: Analyst) -> Response:
    fields = body.model_dump()
    fields["evidence"] = evidence_references(body.evidence, ctx.evidence_root, local_files=False)
    obs = Observation(id=new_id(), site_id=site_id, analyst=who.username, **fields)
    return json_response(ctx.catalog(who).add_observation(obs), 201)


@router.patch(
    "/api/observations/{observation_id}",
    response_model=ObservationOut,
    tags=["observations"],
    summary="Correct an observation",
)
def edit_observation(
    observation_id: str, body: ObservationPatch, ctx: Ctx, who: Analyst
) -> Response:
    cat = ctx.catalog(who)
    obs = cat.get_observation(observation_id)
    sent = patch_fields(
        body,
        nullable=("scene_id", "gsd_m", "sun_azimuth", "sun_elevation", "view_off_nadir", "phase"),
    )
    if "evidence" in sent:
        sent["evidence"] = evidence_references(
            sent["evidence"], ctx.evidence_root, local_files=False
        )
    return json_response(cat.update_observation(replace(obs, **sent, version=body.version)))


MEASUREMENTS_CHOICE = Query(
    description="What becomes of the measurements read from it: kept on the site (naming the "
    "deleted record in their inputs) or deleted too; without it a record with measurements is "
    "not deleted (409)."
)


@router.delete(
    "/api/observations/{observation_id}",
    status_code=204,
    tags=["observations"],
    summary="Retract an observation",
    responses={409: {"description": "It has measurements and no `measurements` choice"}},
)
def delete_observation(
    observation_id: str,
    ctx: Ctx,
    who: Analyst,
    version: Annotated[int | None, Query(ge=1)] = None,
    measurements: Annotated[Literal["keep", "delete"] | None, MEASUREMENTS_CHOICE] = None,
) -> Response:
    ctx.catalog(who).delete_observation(
        observation_id, version=version, measurements=measurements or "refuse"
    )
    return Response(status_code=204)


@router.get(
    "/api/measurements",
    response_model=list[MeasurementOut],
    tags=["measurements"],
    summary="List measurements",
)
async def list_measurements(
    request: Request,
    ctx: Ctx,
    _: Viewer,
    site_id: Annotated[str | None, Query(max_length=128)] = None,
    feature_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return await cached_json(
        ctx, request, lambda: ctx.reader.list_measurements(site_id=site_id, feature_id=feature_id)
    )


@router.get(
    "/api/sites/{site_id}/measured-change",
    response_model=list[MeasuredChangeOut],
    tags=["measurements"],
    summary="How each measured quantity changed between its first and last image",
)
async def measured_change(site_id: str, request: Request, ctx: Ctx, _: Viewer) -> Response:
    """Per feature and quantity measured on two image dates or more: the first and last values,
    the change with its one-sigma error and a two-sigma verdict (is the site being improved?)."""
    from ...catalog.trends import measurement_trends

    def compute() -> object:
        ctx.reader.get_site(site_id)
        return measurement_trends(
            ctx.reader.list_measurements(site_id=site_id), ctx.reader.list_observations(site_id)
        )

    return await cached_json(ctx, request, compute)


@router.post(
    "/api/sites/{site_id}/measurements",
    response_model=MeasurementOut,
    status_code=201,
    tags=["measurements"],
    summary="Record a measurement",
)
def add_measurement(site_id: str, body: MeasurementIn, ctx: Ctx, who: Analyst) -> Response:
    m = Measurement(
        id=new_id(),
        site_id=site_id,
        analyst=who.username,
        measured_at=utcnow(),
        **body.model_dump(),
    )
    return json_response(ctx.catalog(who).add_measurement(m), 201)


@router.delete(
    "/api/measurements/{measurement_id}",
    status_code=204,
    tags=["measurements"],
    summary="Retract a measurement",
)
def delete_measurement(
    measurement_id: str,
    ctx: Ctx,
    who: Analyst,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    ctx.catalog(who).delete_measurement(measurement_id, version=version)
    return Response(status_code=204)


@router.get(
    "/api/sites/{site_id}/changes",
    response_model=list[ChangeEventOut],
    tags=["change events"],
    summary="Change events of a site",
)
async def list_changes(site_id: str, request: Request, ctx: Ctx, _: Viewer) -> Response:
    def compute() -> object:
        ctx.reader.get_site(site_id)
        return ctx.reader.list_change_events(site_id)

    return await cached_json(ctx, request, compute)


@router.post(
    "/api/sites/{site_id}/changes",
    response_model=ChangeEventOut,
    status_code=201,
    tags=["change events"],
    summary="Record a change event",
)
def add_change(site_id: str, body: ChangeEventIn, ctx: Ctx, who: Analyst) -> Response:
    fields = body.model_dump()
    fields["geometry"] = geometry(body.geometry, "geometry")
    ev = ChangeEvent(id=new_id(), site_id=site_id, **fields)
    return json_response(ctx.catalog(who).add_change_event(ev), 201)


@router.delete(
    "/api/changes/{event_id}",
    status_code=204,
    tags=["change events"],
    summary="Retract a change event recorded in error (the history keeps it), and dismiss the "
    "open alerts raised from it unless keep_alerts",
)
def delete_change(
    event_id: str,
    ctx: Ctx,
    who: Analyst,
    version: Annotated[int | None, Query(ge=1)] = None,
    keep_alerts: bool = False,
) -> Response:
    ctx.catalog(who).delete_change_event(event_id, version=version, dismiss_alerts=not keep_alerts)
    return Response(status_code=204)
