"""The REST API routers, one per noun."""

from __future__ import annotations

from fastapi import APIRouter

from . import (
    alerts,
    candidates,
    evidence,
    features,
    imagery,
    ranges,
    records,
    reports,
    session,
    sites,
    sources,
    terrain,
    tools,
    users,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    session.router,
    sites.router,
    features.router,
    records.router,
    sources.router,
    evidence.router,
    alerts.router,
    candidates.router,
    reports.router,
    tools.router,
    users.router,
    imagery.router,
    terrain.router,
    ranges.router,
)
