"""Evidence files: stored by content, atomically, found again and checked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sitewatch.catalog.evidence import (
    evidence_name,
    evidence_reference,
    evidence_references,
    resolve_evidence,
    store_evidence,
)
from sitewatch.errors import InputError, NotFound


def test_store_copies_by_content_and_resolves(tmp_path: Path) -> None:
    src = tmp_path / "portal 1 (2024).png"
    src.write_bytes(b"\x89PNG fake image bytes")
    folder = tmp_path / "evidence"
    ref = store_evidence(src, folder)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert ref == f"evidence:{digest}/portal_1_2024_.png"
    stored = resolve_evidence(ref, folder)
    assert stored.read_bytes() == src.read_bytes() and stored.is_relative_to(folder)
    # the same content twice is kept once, and no temporary file is left behind
    copy = tmp_path / "copy.png"
    copy.write_bytes(src.read_bytes())
    assert store_evidence(src, folder) == ref
    assert evidence_reference(str(copy), folder) == f"evidence:{digest}/copy.png"
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [
        "copy.png",
        "portal_1_2024_.png",
    ]


def test_references_are_checked(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    assert evidence_reference("https://example.org/report.pdf", folder) == (
        "https://example.org/report.pdf"
    )
    with pytest.raises(InputError, match="not a file"):
        evidence_reference(str(tmp_path / "missing.png"), folder)
    with pytest.raises(InputError, match="not an evidence reference"):
        resolve_evidence("evidence:abc/x.png", folder)
    src = tmp_path / "a.txt"
    src.write_text("seen on 2024-03-01")
    ref = store_evidence(src, folder)
    with pytest.raises(NotFound, match="SITEWATCH_EVIDENCE_DIR"):
        resolve_evidence(ref, tmp_path / "elsewhere")
    assert evidence_reference(ref, folder) == ref
    resolve_evidence(ref, folder).write_text("altered")
    with pytest.raises(InputError, match="checksum"):
        resolve_evidence(ref, folder)


def test_names_and_all_checked_before_any_is_stored(tmp_path: Path) -> None:
    assert evidence_name("../../portal 1.png") == "portal_1.png"
    assert evidence_name("C:\\shots\\berm.jpg") == "berm.jpg"
    assert evidence_name("..") == evidence_name("") == "evidence"
    good = tmp_path / "good.png"
    good.write_bytes(b"one")
    folder = tmp_path / "evidence"
    with pytest.raises(InputError, match=r"typo\.png"):
        evidence_references(
            [str(good), "https://example.org/a", str(tmp_path / "typo.png")], folder
        )
    assert not folder.exists()  # the good file was not copied for an observation never stored
    with pytest.raises(InputError, match="upload the file first"):
        evidence_references([str(good)], folder, local_files=False)
    refs = evidence_references([str(good), "https://example.org/a"], folder)
    assert refs[1] == "https://example.org/a" and resolve_evidence(refs[0], folder).is_file()
