"""Interactive triage of search candidates in the terminal, with active learning.

One key per decision: ``a`` accept, ``r`` reject, ``s`` skip, ``q`` quit. Each candidate's chip
is shown as a picture where the terminal can draw one (kitty graphics protocol, iTerm2 inline
images, sixel), and is always saved as a PNG in the run folder, whose path is printed.
After every accept or reject both stages of the run are refitted (accepted tiles join the
positives, rejected ones the negatives: the first-stage model on its features, the second-stage
forest on its descriptors, :class:`SecondStage`) and the remaining candidates are re-ranked by
both, so the next one shown is the most likely site under what the analyst has said so far.
Accepted candidates become suspected sites in the catalog. Decisions are stored in the run folder and the catalog, so a triage
session can stop at any time and resume later.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import rasterio
from numpy.typing import NDArray
from PIL import Image

from ..catalog.models import Candidate, Site
from ..files import atomic_path
from ..types import CandidateState
from .features import read_block
from .model import fit_model
from .rerank import FOLDS, cross_fitted_scores, near_tiles
from .spectral import fuse_ranks

if TYPE_CHECKING:
    from ..catalog.store import Catalog
    from ._runstore import RunFolder

__all__ = [
    "CATALOGUED_RADIUS_M",
    "SecondStage",
    "TriageSummary",
    "catalogued_site",
    "chip_png",
    "detect_graphics",
    "mark_catalogued",
    "read_key",
    "triage",
]

CATALOGUED_RADIUS_M = 1000.0
"""A candidate this close to a catalogued site (its point or AOI) is taken to be that site."""

logger = logging.getLogger(__name__)

KEYS: dict[str, CandidateState] = {"a": "accepted", "r": "rejected", "s": "skipped"}


@dataclass
class TriageSummary:
    """What a triage session did."""

    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    remaining: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "sites": self.sites,
            "remaining": self.remaining,
        }


# --- pictures -----------------------------------------------------------------------------


def detect_graphics(stream: TextIO | None = None) -> str:
    """``kitty``, ``iterm``, ``sixel`` or ``file`` for the terminal behind ``stream``.

    ``SITEWATCH_TRIAGE_GRAPHICS`` forces a choice. Without a terminal it is ``file``.
    """
    forced = os.environ.get("SITEWATCH_TRIAGE_GRAPHICS", "").strip().lower()
    if forced in ("kitty", "iterm", "sixel", "file"):
        return forced
    stream = stream or sys.stdout
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return "file"
    term = os.environ.get("TERM", "")
    program = os.environ.get("TERM_PROGRAM", "")
    if "kitty" in term or os.environ.get("KITTY_WINDOW_ID") or program in ("WezTerm", "ghostty"):
        return "kitty"
    if program == "iTerm.app":
        return "iterm"
    if any(t in term for t in ("mlterm", "foot", "sixel", "contour")):
        return "sixel"
    return "file"


def chip_png(run: RunFolder, row: int, col: int, size: int = 256) -> bytes:
    """A PNG of tile (row, col) with one tile of context around it and the tile outlined."""
    g = run.grid
    T = g.tile
    win = g.window(row, col)
    win = win.__class__(win.col_off - T, win.row_off - T, 3 * T, 3 * T)
    bands = list(run.bands[:3]) if len(run.bands) >= 3 else [run.bands[0]] * 3
    with rasterio.open(run.image) as ds:
        raw, valid = read_block(ds, win, bands)
    lo = np.array([run.scale.low[run.bands.index(b)] for b in bands])[:, None, None]
    hi = np.array([run.scale.high[run.bands.index(b)] for b in bands])[:, None, None]
    img = np.clip((raw.astype(np.float64) - lo) / np.maximum(hi - lo, 1e-9) * 255, 0, 255)
    img = (img * valid).astype(np.uint8)
    f = max(1, size // (3 * T))
    img = img.repeat(f, axis=1).repeat(f, axis=2)
    a, b = T * f, 2 * T * f - 1
    for ch, val in enumerate((255, 40, 40)):
        img[ch, a : b + 1, a] = img[ch, a : b + 1, b] = val
        img[ch, a, a : b + 1] = img[ch, b, a : b + 1] = val
    # Pillow, not GDAL's PNG driver: the chip has no georeferencing, about which GDAL warns
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(buf, "PNG")
    return buf.getvalue()


def _sixel(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as im:
        rgb = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    q = (rgb.astype(np.int32) * 4 // 256).clip(0, 3)  # 4 levels per channel: 64 colours
    idx = q[0] * 16 + q[1] * 4 + q[2]
    h, w = idx.shape
    out = ["\x1bPq"]
    for c in range(64):
        r, g, b = (c // 16) * 100 // 3, ((c // 4) % 4) * 100 // 3, (c % 4) * 100 // 3
        out.append(f"#{c};2;{r};{g};{b}")
    for y0 in range(0, h, 6):
        band = idx[y0 : y0 + 6]
        for c in np.unique(band):
            bits = np.zeros(w, dtype=np.int32)
            for k in range(band.shape[0]):
                bits |= (band[k] == c).astype(np.int32) << k
            out.append(f"#{c}" + "".join(chr(63 + int(v)) for v in bits) + "$")
        out.append("-")
    out.append("\x1b\\")
    return "".join(out)


def _inline(png: bytes, protocol: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    if protocol == "kitty":
        chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
        parts = []
        for i, chunk in enumerate(chunks):
            more = 1 if i < len(chunks) - 1 else 0
            head = "a=T,f=100," if i == 0 else ""
            parts.append(f"\x1b_G{head}m={more};{chunk}\x1b\\")
        return "".join(parts) + "\n"
    if protocol == "iterm":
        return f"\x1b]1337;File=inline=1;size={len(png)}:{data}\a\n"
    return _sixel(png) + "\n"


# --- keys ------------------------------------------------------------------------------------


def read_key(stream: TextIO) -> str:
    """One decision key from ``stream`` (raw single key on a TTY; else the next non-blank char)."""
    if stream.isatty():  # pragma: no cover - needs a real terminal
        import termios
        import tty

        fd = stream.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            return stream.read(1).lower() or "q"
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
    while True:
        ch = stream.read(1)
        if ch == "":
            return "q"
        if not ch.isspace():
            return ch.lower()


# --- the session -----------------------------------------------------------------------------


def _training(run: RunFolder) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    pos, neg = [run.positives], [run.negatives]
    for d in run.decisions():
        row = run.cand_features[d["rank"] - 1][None, :]
        if d["state"] == "accepted":
            pos.append(row)
        elif d["state"] == "rejected":
            neg.append(row)
    return np.vstack(pos), np.vstack(neg)


class SecondStage:
    """The run's second stage (:mod:`.rerank`) refitted on the analyst's decisions.

    The positives are the examples and the accepted candidates, each under the 8 flips and
    rotations of the square; the negatives are the rejected candidates (likewise) and, as in the
    run, the pending candidates themselves, cross-fitted so that none is scored by a forest
    fitted on it, except those on or next to an example or an accepted candidate. Descriptors
    are read from the run's image once per candidate.
    """

    def __init__(self, run: RunFolder) -> None:
        from .run import example_tiles, rerank_block

        self.run = run
        self._block = rerank_block
        tiles = [(int(r), int(c)) for r, c in run.cand_tiles]
        self.features = rerank_block(run.image, run.grid, tiles, run.scale, run.bands)
        ex = example_tiles(run.grid, run.examples) if run.examples else []
        self.example_tiles = np.array(ex, dtype=np.int64).reshape(-1, 2)
        self.examples = (
            rerank_block(run.image, run.grid, ex, run.scale, run.bands, augment=True)
            if ex
            else np.empty((0, self.features.shape[1]))
        )
        self._turned: dict[int, NDArray[np.float64]] = {}

    def _rows(self, rank: int) -> NDArray[np.float64]:
        """Descriptors of candidate ``rank`` under the 8 flips and rotations."""
        if rank not in self._turned:
            r, c = (int(v) for v in self.run.cand_tiles[rank - 1])
            run = self.run
            self._turned[rank] = self._block(
                run.image, run.grid, [(r, c)], run.scale, run.bands, augment=True
            )
        return self._turned[rank]

    def scores(
        self, pending: Sequence[int], decisions: Sequence[dict[str, Any]]
    ) -> NDArray[np.float64] | None:
        """Log-odds of the ``pending`` ranks, or None while there is nothing to learn from
        (no decision yet, or no negative to fit against)."""
        accepted = [int(d["rank"]) for d in decisions if d["state"] == "accepted"]
        rejected = [int(d["rank"]) for d in decisions if d["state"] == "rejected"]
        if not (accepted or rejected) or not pending:
            return None
        n_feat = self.features.shape[1]
        pos = np.vstack([self.examples, *(self._rows(r) for r in accepted)])
        neg = np.vstack([np.empty((0, n_feat)), *(self._rows(r) for r in rejected)])
        idx = np.asarray(pending, dtype=np.intp) - 1
        known = np.vstack(
            [self.example_tiles, self.run.cand_tiles[np.asarray(accepted, np.intp) - 1]]
        )
        near = near_tiles(self.run.cand_tiles[idx], known, 2 * self.run.grid.cells_per_tile)
        if len(pos) == 0 or (len(neg) == 0 and int((~near).sum()) < 2 * FOLDS):
            return None
        return cross_fitted_scores(
            pos, neg, self.features[idx], exclude=near, seed=self.run.params.seed
        )


def _review_order(
    run_scores: Sequence[float],
    first: NDArray[np.float64],
    second: NDArray[np.float64] | None,
    *,
    decided: bool,
    match: NDArray[np.float64] | None = None,
) -> NDArray[np.intp]:
    """Best first: the run's own ranking (its second stage, fused with the spectral match) until
    the analyst has decided something; then the mean of the percentile ranks under the
    first-stage model and the second stage, both refitted on the decisions (the active-learning
    signal; the run's own second-stage score while the refitted one has nothing to learn from),
    ties kept in run order, and fused with the candidates' spectral ``match`` by reciprocal rank
    as the run fused them (:func:`.spectral.fuse_ranks`) when the run has one."""
    from scipy.stats import rankdata

    stored = np.nan_to_num(np.asarray(run_scores, dtype=np.float64), nan=-np.inf)
    if not decided:
        return np.argsort(-stored, kind="stable")
    fresh = np.nan_to_num(np.asarray(first, dtype=np.float64), nan=-np.inf)
    late = stored if second is None else np.nan_to_num(second, nan=-np.inf)
    key = rankdata(late) + rankdata(fresh)
    order = np.argsort(-key, kind="stable")
    if match is None:
        return order
    fused, _ = fuse_ranks([float(match[i]) for i in order])
    out: NDArray[np.intp] = order[np.asarray(fused, dtype=np.intp)]
    return out


def triage(
    run: RunFolder,
    catalog: Catalog,
    *,
    keys: TextIO,
    write: Callable[[str], None],
    graphics: str = "file",
    limit: int | None = None,
) -> TriageSummary:
    """Review the pending candidates of ``run``, best first, until quit, done or ``limit``."""
    summary = TriageSummary()
    cands = {c.rank: c for c in catalog.list_candidates(run_id=run.run_id)}
    pending = [r for r, c in cands.items() if c.state == "pending"]
    model = run.model
    chips = run.path / "chips"
    chips.mkdir(exist_ok=True)
    n_done = 0
    decided = any(d["state"] in ("accepted", "rejected") for d in run.decisions())
    second_stage: SecondStage | None = None
    while pending and (limit is None or n_done < limit):
        feats = run.cand_features[np.array(pending) - 1]
        scores = model.score(feats)
        second = None
        if decided:
            second_stage = second_stage or SecondStage(run)
            second = second_stage.scores(pending, run.decisions())
        match = feats[:, -1] if model.feature_names[-1:] == ("spectral_match",) else None
        order = _review_order(
            [cands[r].score for r in pending], scores, second, decided=decided, match=match
        )
        pending = [pending[i] for i in order]
        rank = pending[0]
        cand = cands[rank]
        score_now = float(scores[order[0]])
        refit = "" if second is None else f", second stage {float(second[order[0]]):.3f}"
        lon, lat = cand.geometry.centroid.x, cand.geometry.centroid.y
        row, col = (int(v) for v in run.cand_tiles[rank - 1])
        png = chip_png(run, row, col)
        png_path = chips / f"{cand.id}.png"
        with atomic_path(png_path) as tmp:
            tmp.write_bytes(png)
        write(
            f"\ncandidate {cand.id}  rank {rank}  score {cand.score:.3f} "
            f"(retrained on your decisions: first stage {score_now:.3f}{refit})  "
            f"lon {lon:.5f} lat {lat:.5f}  cluster {cand.details.get('cluster', '-')}\n"
        )
        near = catalogued_site(catalog, cand)
        known = near[0] if near else None
        if near is not None:
            where = "on" if near[1] == 0 else f"{near[1]:,.0f} m from"
            write(
                f"{where} the catalogued site {near[0].id} ({near[0].name}): accepting links to it\n"
            )
        if graphics != "file":
            write(_inline(png, graphics))
        write(f"chip: {png_path}\n[a]ccept  [r]eject  [s]kip  [q]uit > ")
        key = read_key(keys)
        while key not in KEYS and key != "q":
            write(f"\nunknown key {key!r}; press a, r, s or q > ")
            key = read_key(keys)
        if key == "q":
            write("\n")
            break
        state = KEYS[key]
        site_id = None
        if state == "accepted" and known is not None:
            site_id = known.id  # the place the catalog holds: not a second site
        elif state == "accepted":
            site = Site(
                id=f"{run.run_id.lower()}-c{rank:04d}",
                name=f"Search candidate {rank} of {run.run_id}",
                lon=float(lon),
                lat=float(lat),
                aoi=cand.geometry,
                status="suspected",
                tags=("search-candidate",),
                notes=f"search run {run.run_id}, rank {rank}, score {cand.score:.4f}",
            )
            site_id = catalog.add_site(site).id
            summary.sites.append(site_id)
        details = cand.details
        if state == "accepted" and near is not None:  # linked: say to which site, how far
            mark = {"id": near[0].id, "name": near[0].name, "distance_m": round(near[1], 1)}
            details = {**details, "catalogued_site": mark}
        stored = catalog.update_candidate(
            replace(cand, state=state, site_id=site_id, details=details)
        )
        cands[rank] = stored
        getattr(summary, state).append(cand.id)
        run.record({"rank": rank, "id": cand.id, "state": state, "site_id": site_id})
        write(f"{state}\n")
        pending.pop(0)
        n_done += 1
        if state in ("accepted", "rejected"):
            decided = True
            pos, neg = _training(run)
            model = fit_model(pos, neg, model.feature_names, method=model.method)
            model.save(run.path / "model.json")
    summary.remaining = len(pending)
    return summary


def mark_catalogued(
    catalog: Catalog, candidates: Sequence[Candidate], radius_m: float = CATALOGUED_RADIUS_M
) -> list[Candidate]:
    """The candidates, each lying within ``radius_m`` of a catalogued site marked with the
    nearest one in ``details["catalogued_site"]`` (id, name, and the geodesic distance in metres
    from the candidate's centre to the site's point or AOI, 0 when the candidate touches the
    AOI), so that triage shows an analyst a place the catalog already holds, and accepting it
    links to that site instead of adding it twice."""
    from shapely.ops import nearest_points

    from ..geo import geodesic_distance

    out = []
    for c in candidates:
        centre = c.geometry.centroid
        lon, lat = float(centre.x), float(centre.y)
        best: tuple[float, Site] | None = None
        for site in catalog.query_sites(near=(lon, lat, radius_m)):
            d = geodesic_distance(lon, lat, site.lon, site.lat)
            if site.aoi is not None:
                if site.aoi.intersects(c.geometry):
                    d = 0.0
                else:
                    edge = nearest_points(site.aoi, centre)[0]
                    d = min(d, geodesic_distance(lon, lat, float(edge.x), float(edge.y)))
            if d <= radius_m and (best is None or d < best[0]):
                best = (d, site)
        if best is None:
            out.append(c)
            continue
        d, site = best
        near = {"id": site.id, "name": site.name, "distance_m": round(d, 1)}
        out.append(replace(c, details={**c.details, "catalogued_site": near}))
    return out


def catalogued_site(
    catalog: Catalog, candidate: Candidate, radius_m: float = CATALOGUED_RADIUS_M
) -> tuple[Site, float] | None:
    """The catalogued site a candidate lies on or near, with the distance in metres: the one it
    was marked with (:func:`mark_catalogued`) if that is still in the catalog, else the nearest
    within ``radius_m`` now, so that a site added since the run (one accepted from a
    neighbouring candidate a moment ago) counts too."""
    from ..errors import SiteNotFound

    for cand in (candidate, *mark_catalogued(catalog, [candidate], radius_m)):
        near = cand.details.get("catalogued_site")
        if isinstance(near, dict) and near.get("id"):
            try:
                return catalog.get_site(str(near["id"])), float(near.get("distance_m") or 0.0)
            except SiteNotFound:
                continue
    return None


def candidate_records(run_id: str, result_candidates: list[Any], image: str) -> list[Candidate]:
    """Catalog :class:`Candidate` records for the ranked candidates of a run."""
    return [
        Candidate(
            id=f"{run_id}-{c.rank:04d}",
            run_id=run_id,
            geometry=c.polygon,
            score=float(c.score),
            rank=int(c.rank),
            details={"cluster": c.cluster, "tile_row": c.row, "tile_col": c.col, "image": image},
        )
        for c in result_candidates
    ]
