"""``/api/alerts``: the alert inbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...types import AlertState
from ..deps import Analyst, Ctx, Viewer
from ._convert import json_response
from .schemas import AlertOut, AlertStateIn

__all__ = ["router"]

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


@router.get("", response_model=list[AlertOut], summary="List alerts")
def list_alerts(
    ctx: Ctx,
    _: Viewer,
    state: Annotated[list[AlertState] | None, Query()] = None,
    site_id: Annotated[str | None, Query(max_length=128)] = None,
    rule: Annotated[list[str] | None, Query(max_length=64)] = None,
) -> Response:
    """Alerts, newest first; ``rule`` picks rules (changed_area, phase_transition,
    new_feature_candidate, measured_change)."""
    return json_response(ctx.reader.list_alerts(site_id=site_id, state=state, rule=rule))


@router.get("/{alert_id}", response_model=AlertOut, summary="Read an alert")
def get_alert(alert_id: str, ctx: Ctx, _: Viewer) -> Response:
    return json_response(ctx.reader.get_alert(alert_id))


@router.post("/{alert_id}/state", response_model=AlertOut, summary="Acknowledge or dismiss")
def set_state(alert_id: str, body: AlertStateIn, ctx: Ctx, who: Analyst) -> Response:
    return json_response(
        ctx.catalog(who).set_alert_state(alert_id, body.state, version=body.version)
    )
