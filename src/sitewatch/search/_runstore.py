"""The run folder: what a search run leaves on disk so that triage can resume it.

``<folder>/run.json``         run id, image, DEM, parameters, band stretch, tile grid, summary
``<folder>/model.json``       the current model (triage overwrites it as it learns)
``<folder>/training.npz``     positive and negative feature rows
``<folder>/candidates.npz``   candidate tiles (row, col) and their feature rows, by rank
``<folder>/candidates.geojson`` the ranked candidates
``<folder>/decisions.jsonl``  one line per triage decision (append-only)

An index ``$SITEWATCH_HOME/search-runs.json`` maps run ids to folders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS

from ..config import get_settings
from ..errors import InputError, NotFound
from ..files import atomic_path, write_text
from .candidates import to_geojson
from .features import BandScale
from .model import SearchModel
from .run import SearchParams, SearchResult
from .tiles import TileGrid

__all__ = ["RunFolder", "find_run", "save_run"]

F64 = NDArray[np.float64]


@dataclass
class RunFolder:
    """A stored run, loaded back."""

    path: Path
    run_id: str
    image: str
    dem: str | None
    params: SearchParams
    grid: TileGrid
    scale: BandScale
    bands: tuple[int, ...]
    summary: dict[str, Any]
    model: SearchModel
    positives: F64
    negatives: F64
    cand_tiles: NDArray[np.int64]
    cand_features: F64
    examples: list[tuple[float, float]]
    """The example points (lon, lat) the run was given."""

    def decisions(self) -> list[dict[str, Any]]:
        """Triage decisions made so far, oldest first."""
        p = self.path / "decisions.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line]

    def record(self, decision: dict[str, Any]) -> None:
        """Append a triage decision."""
        with (self.path / "decisions.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(decision) + "\n")


def _grid_dict(g: TileGrid) -> dict[str, Any]:
    return {
        "width": g.width, "height": g.height, "transform": list(g.transform)[:6],
        "crs": g.crs.to_wkt() if g.crs else None, "tile": g.tile, "stride": g.stride,
    }  # fmt: skip


def _grid_from(d: dict[str, Any]) -> TileGrid:
    return TileGrid(
        int(d["width"]), int(d["height"]), Affine(*d["transform"]),
        CRS.from_wkt(d["crs"]) if d["crs"] else None, int(d["tile"]), int(d["stride"]),
    )  # fmt: skip


def save_run(result: SearchResult, folder: Path) -> Path:
    """Write ``result`` into ``folder`` (created) and register it in the index."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "run_id": result.run_id,
        "image": str(Path(result.image).resolve()),
        "dem": str(Path(result.dem).resolve()) if result.dem else None,
        "params": result.params.to_dict(),
        "scale": result.scale.to_dict(),
        "bands": list(result.bands),
        "grid": _grid_dict(result.grid),
        "examples": result.examples,
        "summary": result.summary(),
        "started": result.started.isoformat(),
    }
    write_text(folder / "run.json", json.dumps(meta, indent=2))
    result.model.save(folder / "model.json")
    with atomic_path(folder / "training.npz") as tmp:
        np.savez_compressed(tmp, positives=result.positives, negatives=result.negatives)
    tiles = np.array([(c.row, c.col) for c in result.candidates], dtype=np.int64).reshape(-1, 2)
    with atomic_path(folder / "candidates.npz") as tmp:
        np.savez_compressed(tmp, tiles=tiles, features=result.candidate_features)
    gj = to_geojson(result.candidates, run_id=result.run_id)
    write_text(folder / "candidates.geojson", json.dumps(gj))
    _register(result.run_id, folder)
    return folder


def _index_path() -> Path:
    return get_settings().home / "search-runs.json"


def _register(run_id: str, folder: Path) -> None:
    p = _index_path()
    index = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    index[run_id] = str(folder.resolve())
    write_text(p, json.dumps(index, indent=2), parents=True)


def find_run(ref: str) -> RunFolder:
    """Load a run from its folder, its candidates GeoJSON, or its run id."""
    p = Path(ref)
    folder: Path | None = None
    if (p / "run.json").exists():
        folder = p
    elif p.is_file() and p.suffix in (".geojson", ".json"):
        sibling = p.with_suffix(".run")
        if (sibling / "run.json").exists():
            folder = sibling
    else:
        idx = _index_path()
        index = json.loads(idx.read_text(encoding="utf-8")) if idx.exists() else {}
        if ref in index:
            folder = Path(index[ref])
    if folder is None:
        raise NotFound(
            f"no search run {ref!r}: give the run folder (written next to the -o file as "
            "NAME.run/), the candidates GeoJSON or a run id printed by `sitewatch search run`"
        )
    try:
        meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        train = np.load(folder / "training.npz")
        cands = np.load(folder / "candidates.npz")
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"the run folder {folder} is damaged: {exc}") from exc
    return RunFolder(
        path=folder,
        run_id=meta["run_id"],
        image=meta["image"],
        dem=meta["dem"],
        params=SearchParams.from_dict(meta["params"]),
        grid=_grid_from(meta["grid"]),
        scale=BandScale.from_dict(meta["scale"]),
        bands=tuple(meta["bands"]),
        summary=meta["summary"],
        model=SearchModel.load(folder / "model.json"),
        positives=train["positives"],
        negatives=train["negatives"],
        cand_tiles=cands["tiles"],
        cand_features=cands["features"],
        examples=[(float(lon), float(lat)) for lon, lat in meta.get("examples", [])],
    )
