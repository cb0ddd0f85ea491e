"""Atomic writes (``sitewatch.files``): all or nothing, and clear errors for bad output paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sitewatch.errors import InputError
from sitewatch.files import atomic_path, check_writable, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sites.geojson"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        (tmp.parent / f"{tmp.name}-journal").write_text("j")  # what SQLite (GeoPackage) leaves
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sites.geojson"]


def test_a_successful_write_replaces_with_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "c.npz"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npz" and tmp != target
        np.savez_compressed(tmp, a=np.arange(3))  # would append .npz to any other suffix
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_missing_folder_is_an_input_error_unless_parents(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"folder .*nope does not exist; create it first"):
        write_text(tmp_path / "nope" / "a.json", "{}")
    assert not (tmp_path / "nope").exists()
    write_text(tmp_path / "new" / "deeper" / "a.json", "{}", parents=True)
    assert (tmp_path / "new" / "deeper" / "a.json").read_text() == "{}"


def test_a_folder_is_not_a_file_name(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="it is a folder"):
        write_text(tmp_path / "out", "x")
    assert (tmp_path / "out").is_dir()


def test_an_unwritable_place_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create the folder"):
        write_text(tmp_path / "file" / "sub" / "a.json", "{}", parents=True)
    if Path("/proc/self").is_dir():  # a folder no file can be created in, even by root
        with pytest.raises(InputError, match="cannot create a file in /proc"):
            write_text("/proc/a.json", "{}")


def test_check_writable_tries_the_folder_and_leaves_nothing(tmp_path: Path) -> None:
    assert check_writable(tmp_path / "a.tif") == tmp_path / "a.tif"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="does not exist"):
        check_writable(tmp_path / "nope" / "a.tif")
    if Path("/proc/self").is_dir():
        with pytest.raises(InputError, match="cannot create a file in /proc"):
            check_writable("/proc/a.tif")
