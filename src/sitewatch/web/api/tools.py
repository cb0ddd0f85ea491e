"""``/api/tools``: the shadow-height tool (click the base of an object and the tip of its shadow),
the ruler (a geodesic distance through clicked points), and the size of a mapped feature (area,
length, and a berm's volume from its known height).

Uses :func:`sitewatch.analysis.mensuration.height_from_shadow_tip` (length along the shadow
azimuth, first-order uncertainty) when the sun azimuth is known; with the elevation alone it
falls back to ``h = L tan(e)`` over the clicked distance with the same propagation of the click
and sun-elevation errors. The sun position comes from the request, the observation, or is computed
for the site and the image time.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Response
from pyproj import Geod

from ...catalog.models import Measurement, Observation, new_id, utcnow
from ...errors import AuthError, InputError
from ..deps import AppContext, Ctx, Viewer
from ..users import has_role
from ._convert import json_response
from .schemas import DistanceIn, DistanceOut, FeatureSizeIn, FeatureSizeOut, ShadowIn, ShadowOut

if TYPE_CHECKING:
    from ...analysis.mensuration import Quantity

__all__ = ["router", "shadow_height"]

router = APIRouter(prefix="/api/tools", tags=["tools"])
_GEOD = Geod(ellps="WGS84")
_DEFAULT_GSD_M = 1.0


def mensuration_backend() -> str:
    """Which implementation the tool uses (``sitewatch.analysis.mensuration`` or the fallback)."""
    try:
        from ...analysis import mensuration  # noqa: F401
    except ImportError:
        return "builtin"
    return "sitewatch.analysis.mensuration"


def _plain(length: float, sigma_l: float, elev: float, sigma_e: float) -> tuple[float, float]:
    e = math.radians(elev)
    h = length * math.tan(e)
    var = (math.tan(e) * sigma_l) ** 2 + (length / math.cos(e) ** 2 * math.radians(sigma_e)) ** 2
    return h, math.sqrt(var)


def shadow_height(
    base: tuple[float, float],
    tip: tuple[float, float],
    *,
    sun_elevation: float,
    sun_azimuth: float | None,
    position_sigma_m: float,
    elevation_sigma_deg: float,
) -> dict[str, Any]:
    """Height (m) and one-sigma uncertainty of an object from its base and shadow tip (lon/lat)."""
    fwd, _, dist = _GEOD.inv(base[0], base[1], tip[0], tip[1])
    if dist <= 0.0:
        raise InputError("the base and the tip are the same point; click the end of the shadow")
    if sun_azimuth is not None and mensuration_backend() != "builtin":
        from ...analysis.mensuration import height_from_shadow_tip

        res = height_from_shadow_tip(
            base,
            tip,
            sun_azimuth=sun_azimuth,
            sun_elevation=sun_elevation,
            position_sigma_m=position_sigma_m,
            elevation_sigma_deg=elevation_sigma_deg,
        )
        if res.height_m is None or res.uncertainty_m is None or res.shadow_length_m is None:
            raise InputError(f"no height: {res.reason} {res.detail}".strip())
        return {
            "height_m": res.height_m,
            "uncertainty_m": res.uncertainty_m,
            "shadow_length_m": res.shadow_length_m,
            "method": f"mensuration.{res.method}",
            "inputs": dict(res.inputs),
            "shadow_azimuth_deg": float(fwd) % 360.0,
        }
    h, sigma = _plain(
        float(dist), math.sqrt(2.0) * position_sigma_m, sun_elevation, elevation_sigma_deg
    )
    return {
        "height_m": h,
        "uncertainty_m": sigma,
        "shadow_length_m": float(dist),
        "method": "shadow_length_tan_elevation",
        "inputs": {"sun_elevation": sun_elevation, "distance_m": round(float(dist), 3)},
        "shadow_azimuth_deg": float(fwd) % 360.0,
    }


def _observation(ctx: AppContext, site_id: str, observation_id: str) -> Observation:
    """The site's observation of that id (the image a tool measures on), or a clear error."""
    obs = next((o for o in ctx.reader.list_observations(site_id) if o.id == observation_id), None)
    if obs is None:
        raise InputError(f"site {site_id!r} has no observation {observation_id!r}")
    return obs


@router.post("/shadow-height", response_model=ShadowOut, summary="Height from a shadow")
def shadow_height_tool(body: ShadowIn, ctx: Ctx, who: Viewer) -> Response:
    """Height of an object from its base and shadow tip, with its one-sigma uncertainty.

    Anyone may measure; ``save`` (storing a measurement) needs the analyst role.
    """
    if body.save and not has_role(who.user.role, "analyst"):
        raise AuthError(f"user {who.username!r} is a {who.user.role}; saving needs 'analyst'")
    for name, (lon, lat) in (("base", body.base), ("tip", body.tip)):
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise InputError(f"{name} [{lon}, {lat}] is not a lon/lat position")
    site = ctx.reader.get_site(body.site_id)
    elev, azim, gsd, source = body.sun_elevation, body.sun_azimuth, body.gsd_m, "request"
    when = body.acquired
    if body.observation_id:
        obs = _observation(ctx, site.id, body.observation_id)
        when = when or obs.acquired
        gsd = gsd or obs.gsd_m
        if elev is None and obs.sun_elevation is not None:
            elev, azim, source = obs.sun_elevation, obs.sun_azimuth, "observation"
    if elev is None:
        if when is None:
            raise InputError(
                "give sun_elevation, an observation_id with sun angles, or the image time "
                "(acquired) to compute the sun position"
            )
        if when.tzinfo is None:
            raise InputError("acquired must carry a time zone (use UTC)")
        from ...analysis.sun import sun_position

        sun = sun_position(body.base[0], body.base[1], when, refraction=True)  # as the CLI
        elev, azim, source = sun.elevation, sun.azimuth, "computed"
        if elev <= 0.0:
            raise InputError(
                f"the sun was below the horizon at {when.isoformat()} (elevation {elev:.1f}); "
                "check the image time"
            )
    sigma_pos = body.click_sigma_px * (gsd or _DEFAULT_GSD_M)
    res = shadow_height(
        body.base,
        body.tip,
        sun_elevation=elev,
        sun_azimuth=azim,
        position_sigma_m=sigma_pos,
        elevation_sigma_deg=body.sun_elevation_sigma,
    )
    payload: dict[str, Any] = {
        "height_m": res["height_m"],
        "uncertainty_m": res["uncertainty_m"],
        "shadow_length_m": res["shadow_length_m"],
        "shadow_azimuth_deg": res["shadow_azimuth_deg"],
        "sun_elevation_deg": elev,
        "sun_azimuth_deg": azim,
        "sun_source": source,
        "method": res["method"],
        "measurement": None,
    }
    if body.save:
        m = Measurement(
            id=new_id(),
            site_id=site.id,
            kind="height",
            value=round(res["height_m"], 3),
            unit="m",
            uncertainty=round(res["uncertainty_m"], 3),
            feature_id=body.feature_id,
            observation_id=body.observation_id,
            method=res["method"],
            inputs={
                **res["inputs"],
                "base": list(body.base),
                "tip": list(body.tip),
                "sun_source": source,
                "position_sigma_m": sigma_pos,
                "sun_elevation_sigma_deg": body.sun_elevation_sigma,
                **({"acquired": when.isoformat()} if when is not None else {}),
            },
            analyst=who.username,
            measured_at=utcnow(),
        )
        payload["measurement"] = ctx.catalog(who).add_measurement(m)
    return json_response(payload)


@router.post("/distance", response_model=DistanceOut, summary="Geodesic distance (the ruler)")
def distance_tool(body: DistanceIn, ctx: Ctx, who: Viewer) -> Response:
    """Geodesic length on WGS84 of the path through the clicked points, with its one-sigma
    uncertainty from the click error (``click_sigma_px`` pixels of ``gsd_m``, or of the
    observation's pixel size). Anyone may measure; ``save`` (analyst role) stores it as a
    measurement of the site, or of ``feature_id``, dated by the observation or ``acquired``."""
    from ...analysis.mensuration import geodesic_path_length

    if body.save and not has_role(who.user.role, "analyst"):
        raise AuthError(f"user {who.username!r} is a {who.user.role}; saving needs 'analyst'")
    site = ctx.reader.get_site(body.site_id)
    gsd, when = body.gsd_m, body.acquired
    if body.observation_id:
        obs = _observation(ctx, site.id, body.observation_id)
        gsd, when = gsd or obs.gsd_m, when or obs.acquired
    sigma_pos = body.click_sigma_px * (gsd or _DEFAULT_GSD_M)
    q = geodesic_path_length(list(body.points), position_sigma_m=sigma_pos)
    azimuth = q.inputs["azimuths_deg"][0]  # of the first segment, as the distance keeps it
    payload: dict[str, Any] = {
        "length_m": q.value, "uncertainty_m": q.uncertainty, "segments_m": q.inputs["segments_m"],
        "azimuth_deg": azimuth, "method": q.method, "measurement": None,
    }  # fmt: skip
    if body.save:
        m = Measurement(
            id=new_id(), site_id=site.id, kind=body.kind, value=round(q.value, 3), unit="m",
            uncertainty=round(q.uncertainty, 3), feature_id=body.feature_id,
            observation_id=body.observation_id, method=q.method,
            inputs={**q.inputs, "points": [list(p) for p in body.points],
                    **({"acquired": when.isoformat()} if when is not None else {})},
            analyst=who.username, measured_at=utcnow(),
        )  # fmt: skip
        payload["measurement"] = ctx.catalog(who).add_measurement(m)
    return json_response(payload)


@router.post("/feature-size", response_model=FeatureSizeOut, summary="Size of a mapped feature")
def feature_size_tool(body: FeatureSizeIn, ctx: Ctx, who: Viewer) -> Response:
    """Geodesic area and perimeter of a polygon feature (length of a line), and the volume of a
    berm or spoil heap on it (prismoid) from ``height_m``, else the height the catalog knows of
    it; with one-sigma uncertainties. ``save`` (analyst role) stores them on the feature.
    """
    from ...analysis.mensuration import berm_volume, geodesic_path_length, geodesic_polygon_area
    from ...catalog.models import known_height

    if body.save and not has_role(who.user.role, "analyst"):
        raise AuthError(f"user {who.username!r} is a {who.user.role}; saving needs 'analyst'")
    feature = ctx.reader.get_feature(body.feature_id)
    geom = feature.geometry
    sigma = body.position_sigma_m
    out: dict[str, Any] = {"feature_id": feature.id, "height_from": None, "measurements": []}
    found: list[tuple[str, Quantity]] = []
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        found.append(("area", geodesic_polygon_area(geom, position_sigma_m=sigma)))
        rings = [geom] if geom.geom_type == "Polygon" else list(geom.geoms)
        perimeter = sum(
            geodesic_path_length(list(p.exterior.coords), position_sigma_m=sigma).value
            for p in rings
        )
        out["length"] = {"value": round(perimeter, 3), "unit": "m", "method": "geodesic_wgs84"}
        height = (
            (body.height_m, 0.0, {"height_from": "request"})
            if body.height_m is not None
            else known_height(feature, ctx.reader.list_measurements(feature_id=feature.id))
        )
        if height is not None:
            h, h_sigma, origin = height
            if body.height_sigma_m is not None:  # the request's error replaces the known one
                h_sigma = body.height_sigma_m
            q = berm_volume(
                geom,
                h,
                crest_width_m=body.crest_width_m,
                height_sigma_m=h_sigma,
                position_sigma_m=sigma,
            )
            found.append(("volume", replace(q, inputs={**q.inputs, **origin})))
            out["height_from"] = origin["height_from"]
    elif geom.geom_type == "LineString":
        found.append(("length", geodesic_path_length(list(geom.coords), position_sigma_m=sigma)))
    else:
        raise InputError(
            f"feature {feature.id!r} is a {geom.geom_type.lower()}: it has no area or length; "
            "redraw it as a line or a polygon to measure it"
        )
    for kind, q in found:
        out[kind] = q.to_dict()
    if body.save:
        cat = ctx.catalog(who)
        with cat.transaction():
            for kind, q in found:
                out["measurements"].append(
                    cat.add_measurement(
                        Measurement(
                            id=new_id(),
                            site_id=feature.site_id,
                            kind=kind,  # type: ignore[arg-type]
                            value=round(q.value, 3),
                            unit=q.unit,
                            uncertainty=round(q.uncertainty, 3),
                            feature_id=feature.id,
                            method=q.method,
                            inputs=dict(q.inputs),
                            analyst=who.username,
                            measured_at=utcnow(),
                        )
                    )
                )
    return json_response(out)
