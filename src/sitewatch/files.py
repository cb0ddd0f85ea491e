"""Writing files so that nothing already stored is lost or half-written.

Every file sitewatch writes (catalog exports, change maps, search candidates, reports, archived
chips, models) goes through :func:`atomic_path`: the content is written to a temporary file in
the target's own folder and moved over the target with ``os.replace`` only once it is complete,
so a crash, a full disk or an error mid-way leaves the previous file as it was and no partial
file under the final name.

Missing folders: a writer of one exchange file (a catalog export, a change map, range rings)
refuses a folder that does not exist, since a typo is likelier than intent; a writer of a
product made of several files (a brief with its figures, a search run folder, the archive)
creates its folders (``parents=True``). Either way a folder that cannot be made or written is
an :class:`~sitewatch.errors.InputError` that names it, never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

__all__ = ["atomic_path", "check_writable", "make_folder", "sha256_file", "write_text"]


def make_folder(folder: str | Path, purpose: str = "") -> Path:
    """Create ``folder`` (and its parents) if missing; an InputError that says why if it cannot."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission, a read-only file system
        why = exc.strerror or str(exc)
        raise InputError(
            f"cannot create the folder {path}{f' for {purpose}' if purpose else ''} ({why}); "
            "choose a folder you can write to"
        ) from exc
    return path


def _folder_of(target: Path, parents: bool) -> Path:
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder; give a file name inside it")
    if parents:
        make_folder(folder, str(target))
    elif not folder.is_dir():
        raise InputError(
            f"cannot write {target}: the folder {folder} does not exist; create it first"
        )
    return folder


def _temp_file(target: Path, folder: Path, ext: str) -> Path:
    """A new empty file beside ``target``, or an InputError that says why none can be made."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=ext, dir=folder)
    except OSError as exc:  # no permission, a read-only or special file system
        raise InputError(
            f"cannot write {target}: cannot create a file in {folder} ({exc.strerror}); "
            "choose a folder you can write to"
        ) from exc
    os.close(fd)
    return Path(name)


def check_writable(path: str | Path) -> Path:
    """``path`` as a Path, after checking that a file can be written there (its folder exists
    and takes a new file; it is not a folder), so a command refuses a bad output before the work.
    """
    target = Path(path)
    _temp_file(target, _folder_of(target, parents=False), ".tmp").unlink()
    return target


@contextlib.contextmanager
def atomic_path(
    path: str | Path, suffix: str | None = None, *, parents: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it over ``path`` only if the block succeeds.

    ``suffix`` is the temporary file's extension (by default the target's, so that drivers that
    go by the extension pick the right format). With ``parents`` missing folders are created;
    without, a missing folder is an :class:`~sitewatch.errors.InputError` that names it. On error
    the temporary file, and any ``<tmp>-journal``/``-wal`` files a database left, are removed.
    """
    target = Path(path)
    folder = _folder_of(target, parents)
    ext = suffix if suffix is not None else (target.suffix or ".tmp")
    tmp = _temp_file(target, folder, ext)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files: give the usual permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        for leftover in (tmp, *tmp.parent.glob(tmp.name + "-*")):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise


def write_text(path: str | Path, text: str, *, parents: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path, parents=parents) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
