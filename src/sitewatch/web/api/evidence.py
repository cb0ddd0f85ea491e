"""``/api/evidence``: upload an evidence file for an observation, and read it back.

An upload is the file's bytes as the request body (``?name=`` gives its file name), at most
50 MB; it is stored by content (:mod:`sitewatch.catalog.evidence`) and answered with the
reference to put in an observation's ``evidence``. Reading checks the file against its SHA-256.
Images are shown inline; anything else is sent as a download, and nothing is ever run as a page
of this site (``sandbox`` CSP, no MIME sniffing).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from ...catalog.evidence import (
    EVIDENCE_SCHEME,
    evidence_name,
    resolve_evidence,
    store_evidence,
)
from ...errors import InputError
from ..deps import Analyst, Ctx, Viewer
from ._convert import json_response
from .schemas import EvidenceOut

__all__ = ["MAX_EVIDENCE_BYTES", "router"]

router = APIRouter(prefix="/api/evidence", tags=["evidence"])

MAX_EVIDENCE_BYTES = 50 << 20
_INLINE = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


@router.post("", response_model=EvidenceOut, status_code=201, summary="Upload an evidence file")
async def upload_evidence(
    request: Request,
    ctx: Ctx,
    _: Analyst,
    name: Annotated[str, Query(min_length=1, max_length=255, description="the file's name")],
) -> Response:
    """Store the request body as an evidence file (analyst); the same content is kept once."""
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmpdir:
        tmp = Path(tmpdir) / evidence_name(name)
        size = 0
        with tmp.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_EVIDENCE_BYTES:
                    raise InputError(
                        f"evidence files are limited to {MAX_EVIDENCE_BYTES >> 20} MB; send a "
                        "smaller file or cite it by its web address"
                    )
                fh.write(chunk)
        if size == 0:
            raise InputError("the evidence file is empty: send the file's bytes as the body")
        ref = await run_in_threadpool(store_evidence, tmp, ctx.evidence_root)
    digest, _sep, stored_name = ref.removeprefix(EVIDENCE_SCHEME).partition("/")
    body = {"reference": ref, "name": stored_name, "sha256": digest, "size": size}
    return json_response(body, 201)


@router.get("/{digest}/{name}", response_class=FileResponse, summary="Read an evidence file")
async def read_evidence(digest: str, name: str, ctx: Ctx, _: Viewer) -> Response:
    path = await run_in_threadpool(
        resolve_evidence, f"{EVIDENCE_SCHEME}{digest}/{name}", ctx.evidence_root
    )
    media = _INLINE.get(path.suffix.lower())
    return FileResponse(
        path,
        media_type=media or "application/octet-stream",
        filename=path.name,
        content_disposition_type="inline" if media else "attachment",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, max-age=86400, immutable",
        },
    )
