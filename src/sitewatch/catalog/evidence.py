"""Evidence files of observations: copied into the evidence folder and named by their content.

An observation's ``evidence`` holds references, not files. :func:`store_evidence` copies a local
file (a screenshot, an annotated chip, a PDF of a source) into the evidence folder
(``SITEWATCH_EVIDENCE_DIR``, by default ``SITEWATCH_HOME/evidence``; a shared folder for a team)
under ``<sha256>/<file name>`` and returns the reference ``evidence:<sha256>/<file name>``. The
copy is written to a temporary file and moved into place once complete and verified, so a
crash leaves no half-written evidence; the same content stored twice is kept once. A web
address (``https://...``) is kept as it is. :func:`resolve_evidence` finds a reference's file
again and checks that its content is still the one recorded.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError, NotFound
from ..files import atomic_path, sha256_file

__all__ = [
    "EVIDENCE_SCHEME",
    "evidence_name",
    "evidence_reference",
    "evidence_references",
    "resolve_evidence",
    "store_evidence",
]

EVIDENCE_SCHEME = "evidence:"
_REF_RE = re.compile(r"^evidence:([0-9a-f]{64})/([^/\\]+)$")
_URL_RE = re.compile(r"^(https?|s3|gs)://\S+$", re.IGNORECASE)
_UNSAFE_NAME = re.compile(r"[^\w.\-]+")


def evidence_name(name: str) -> str:
    """The name a file is stored under: its last path part, with letters, digits, ``.``, ``-``
    and ``_`` only (``"../portal 1.png"`` is ``"portal_1.png"``, ``".."`` is ``"evidence"``)."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", last).strip("._")
    return cleaned[:120] or "evidence"


def store_evidence(path: str | Path, folder: str | Path) -> str:
    """Copy the file at ``path`` into ``folder`` and return its ``evidence:`` reference."""
    src = Path(path)
    if not src.is_file():
        raise InputError(
            f"evidence {str(src)!r} is not a file: give an existing file (an image, a PDF) "
            "or a web address (https://...)"
        )
    digest = sha256_file(src)
    name = evidence_name(src.name)
    dest = Path(folder) / digest / name
    if dest.is_file() and sha256_file(dest) == digest:
        return f"{EVIDENCE_SCHEME}{digest}/{name}"
    with atomic_path(dest, parents=True) as tmp:
        shutil.copyfile(src, tmp)
        if sha256_file(tmp) != digest:
            raise InputError(f"evidence {str(src)!r} changed while it was copied; try again")
    return f"{EVIDENCE_SCHEME}{digest}/{name}"


def _checked(value: str, folder: str | Path, local_files: bool) -> bool:
    """Check ``value`` without storing anything; True when it is a local file to store.
    A web address is taken as it is; a stored reference must resolve."""
    text = value.strip()
    if _URL_RE.match(text):
        return False
    if text.startswith(EVIDENCE_SCHEME):
        resolve_evidence(text, folder)
        return False
    if not local_files:
        raise InputError(
            f"evidence {text[:80]!r} is neither a web address (https://...) nor a reference "
            "returned by POST /api/evidence; upload the file first"
        )
    if not Path(text).is_file():
        raise InputError(
            f"evidence {text!r} is not a file: give an existing file (an image, a PDF) "
            "or a web address (https://...)"
        )
    return True


def evidence_reference(value: str, folder: str | Path, *, local_files: bool = True) -> str:
    """The reference to record for ``value``: a web address as it is, a stored reference
    (``evidence:...``) once checked, or a local file stored by :func:`store_evidence`
    (refused without ``local_files``: a web client names no file of the server)."""
    return evidence_references([value], folder, local_files=local_files)[0]


def evidence_references(
    values: Sequence[str], folder: str | Path, *, local_files: bool = True
) -> tuple[str, ...]:
    """:func:`evidence_reference` of each value, every one checked before any file is stored,
    so that a mistyped last file leaves no copies of the others behind."""
    to_store = [_checked(v, folder, local_files) for v in values]
    return tuple(
        store_evidence(v.strip(), folder) if store else v.strip()
        for v, store in zip(values, to_store, strict=True)
    )


def resolve_evidence(reference: str, folder: str | Path) -> Path:
    """The stored file of an ``evidence:`` reference, its content checked against the name."""
    m = _REF_RE.match(reference)
    if m is None:
        raise InputError(
            f"{reference!r} is not an evidence reference (evidence:<sha256>/<file name>)"
        )
    path = Path(folder) / m.group(1) / m.group(2)
    if not path.is_file():
        raise NotFound(
            f"evidence {reference!r} is not in the evidence folder {str(folder)!r}; set "
            "SITEWATCH_EVIDENCE_DIR to the folder it was stored in"
        )
    if sha256_file(path) != m.group(1):
        raise InputError(f"evidence file {str(path)!r} no longer matches its recorded checksum")
    return path
