"""A sweep of learned-change-model settings under OSCD leave-cities-out cross-validation.

Each job is one training configuration and one seed, run through all folds; the test cities'
change probabilities are kept (uint8) so ensembles and thresholds can be scored afterwards
without training again. Built to use a borrowed GPU machine's few minutes fully: the OSCD
pairs travel as one ``.npz`` (export it where the data and the full install are), workers share
the job list, and a worker starts no job it cannot finish before ``--deadline``.

    # where ../shared/data/oscd is readable (full install):
    .venv/bin/python bench/change_sweep.py export ../shared/data/oscd -o .devdata/oscd.npz
    # on the machine that trains (torch and numpy are enough; rasterio may be missing):
    PYTHONPATH=src python3 bench/change_sweep.py run .devdata/oscd.npz --out OUT \\
        --device cuda --workers 6 --worker 0 --deadline 480 &   # ... one per worker
    # afterwards, anywhere:
    .venv/bin/python bench/change_sweep.py score OUT/*.npz --ensemble base:0,base:1,base:2

The weights are thrown away (the OSCD labels are non-commercial). ``JOBS`` lists the
configurations in the order they are run; the figures are in bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import os
import sys
import time
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from sitewatch.analysis.changeeval import Scores

FOLDS = 5

# The session-4 defaults the sweep's figures were measured with (since session 17 the defaults
# are 192 px crops, batches of 3 and four levels, since session 18 the inputs add spectral
# indices); every configuration starts from them, so the sweep still reproduces those figures.
SESSION4: dict[str, Any] = {
    "crop": 96,
    "batch": 12,
    "widths": (16, 32, 64),
    "normalisation": "per_image_zscore",
}

# name: (TrainConfig changes, bands or None for all); each is run with the seeds in JOBS
_CHANGES: dict[str, tuple[dict[str, Any], tuple[str, ...] | None]] = {
    "base": ({}, None),
    "long": ({"steps": 3000}, None),
    "wide": ({"steps": 3000, "widths": (32, 64, 128)}, None),
    "jit": ({"steps": 3000, "jitter": 0.1}, None),
    "rgbn": ({}, ("B02", "B03", "B04", "B08")),
    "reg": ({"steps": 3000, "dropout": 0.3, "weight_decay": 1e-2}, None),
    "cf25": ({"steps": 3000, "change_fraction": 0.25}, None),
    "deep": ({"steps": 3000, "widths": (16, 32, 64, 128)}, None),
    "big": ({"steps": 3000, "crop": 128, "batch": 24}, None),
    "lr5": ({"steps": 3000, "lr": 5e-4}, None),
    "xl": ({"steps": 6000, "widths": (32, 64, 128), "jitter": 0.1}, None),
}
CONFIGS: dict[str, tuple[dict[str, Any], tuple[str, ...] | None]] = {
    name: ({**SESSION4, **changes}, bands) for name, (changes, bands) in _CHANGES.items()
}
JOBS: list[tuple[str, int]] = [
    ("base", 0), ("long", 0), ("wide", 0), ("xl", 0), ("base", 1), ("jit", 0), ("base", 2),
    ("long", 1), ("rgbn", 0), ("reg", 0), ("cf25", 0), ("deep", 0), ("wide", 1), ("long", 2),
    ("big", 0), ("lr5", 0), ("jit", 1), ("rgbn", 1), ("base", 3), ("base", 4), ("reg", 1),
    ("cf25", 1), ("jit", 2), ("rgbn", 2),
]  # fmt: skip


@dataclass
class _Image:
    """What training and scoring read of a Raster: the array and its band names."""

    data: NDArray[np.float32]
    bands: tuple[str, ...]


@dataclass
class _Pair:
    name: str
    before: _Image
    after: _Image
    label: NDArray[np.bool_]


def _stub_rasterio() -> None:
    """Let the training modules import where rasterio is not installed (they never call it)."""
    if importlib.util.find_spec("rasterio") is not None:
        return
    for name in (
        "rasterio",
        "rasterio.crs",
        "rasterio.errors",
        "rasterio.transform",
        "rasterio.warp",
    ):
        module = types.ModuleType(name)
        module.__getattr__ = lambda attr: mock.MagicMock(name=attr)  # type: ignore[method-assign]
        sys.modules[name] = module


QUANT = 2.0
"""Digital numbers are stored divided by this and rounded (Sentinel-2 L1C noise is larger), so
the ten cities fit the 64 MiB that travels to a borrowed machine."""


def _pack(a: NDArray[Any]) -> NDArray[np.uint8]:
    """uint16 values -> lzma of their byte planes after a difference along x (about half size)."""
    v = a.astype(np.int32)
    d = np.diff(v, axis=-1, prepend=0).astype(np.int16).view(np.uint8)
    planes = np.stack([d[..., 0::2], d[..., 1::2]])
    return np.frombuffer(lzma.compress(planes.tobytes(), preset=6), dtype=np.uint8)


def _unpack(packed: NDArray[np.uint8], shape: tuple[int, ...]) -> NDArray[np.float32]:
    planes = np.frombuffer(lzma.decompress(packed.tobytes()), dtype=np.uint8)
    planes = planes.reshape(2, *shape)
    d = np.empty((*shape[:-1], 2 * shape[-1]), dtype=np.uint8)
    d[..., 0::2], d[..., 1::2] = planes[0], planes[1]
    v = np.cumsum(d.view(np.int16).astype(np.int32), axis=-1)
    return v.astype(np.float32)


def export(root: str, out: Path) -> None:
    from sitewatch.analysis.changeeval import iter_oscd

    arrays: dict[str, NDArray[Any]] = {}
    names = []
    for p in iter_oscd(root):
        names.append(p.name)
        for key, img in (("before", p.before), ("after", p.after)):
            data = np.nan_to_num(img.data, nan=0.0)
            arrays[f"{p.name}/{key}"] = _pack(np.round(data / QUANT).clip(0, 65535))
            arrays[f"{p.name}/{key}_shape"] = np.array(img.data.shape)
            arrays[f"{p.name}/{key}_nodata"] = ~np.isfinite(img.data).all(axis=0)
            arrays[f"{p.name}/{key}_bands"] = np.array(img.bands)
        arrays[f"{p.name}/label"] = p.label
    arrays["names"] = np.array(names)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]  # packed arrays are lzma already
    os.replace(tmp, out)
    print(f"{len(names)} cities -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


def _load(path: Path, bands: tuple[str, ...] | None) -> list[_Pair]:
    z = np.load(path)
    pairs = []
    for name in z["names"]:
        imgs = []
        for key in ("before", "after"):
            data = _unpack(z[f"{name}/{key}"], tuple(z[f"{name}/{key}_shape"])) * QUANT
            data[:, z[f"{name}/{key}_nodata"]] = np.nan
            have = tuple(str(b) for b in z[f"{name}/{key}_bands"])
            keep = [have.index(b) for b in bands] if bands else list(range(len(have)))
            imgs.append(_Image(data[keep], tuple(have[i] for i in keep)))
        pairs.append(_Pair(str(name), imgs[0], imgs[1], z[f"{name}/label"]))
    return sorted(pairs, key=lambda p: p.name)


def _scale(changes: dict[str, Any], device: str) -> float:
    """Rough cost of a job relative to ``base``: steps, and on a CPU pixels per step times
    width**2 (a GPU is bound by kernel launches at these sizes)."""
    if device.startswith("cuda"):
        return float(changes.get("steps", 600) / 600)
    base = {**SESSION4, **changes}
    px = base["batch"] * base["crop"] ** 2 / (SESSION4["batch"] * SESSION4["crop"] ** 2)
    width = base["widths"][0] / SESSION4["widths"][0]
    return float(base.get("steps", 600) / 600 * px * width**2)


def run(args: argparse.Namespace) -> None:
    _stub_rasterio()
    import torch

    from sitewatch.analysis.changeeval import Scores
    from sitewatch.analysis.models.training import TrainConfig, train_change_model

    torch.set_num_threads(args.threads)
    t_start = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    probs: dict[str, NDArray[np.uint8]] = {}
    labels: dict[str, NDArray[np.bool_]] = {}
    durations: list[float] = []
    claims = Path(args.claims)
    claims.mkdir(parents=True, exist_ok=True)
    todo = [j for j in JOBS if not args.only or f"{j[0]}:{j[1]}" in args.only.split(",")]
    for name, seed in todo:
        left = args.deadline - (time.monotonic() - t_start)
        changes, bands = CONFIGS[name]
        scale = _scale(changes, args.device)
        guess = (max(durations) if durations else args.first_guess) * scale
        if guess > left:
            continue
        try:  # the first worker to create the claim runs the job
            os.close(os.open(claims / f"{name}-{seed}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        t0 = time.monotonic()
        pairs = _load(Path(args.data), bands)
        base = TrainConfig(threads=args.threads, device=args.device, minutes=None)
        config = replace(base, **changes)
        if args.steps:
            config = replace(config, steps=args.steps)
        per_city: dict[str, Scores] = {}
        fold_s: list[float] = []
        for i in range(FOLDS):
            used = time.monotonic() - t_start
            if fold_s and used + 1.2 * max(fold_s) > args.hard_deadline:
                print(f"worker {args.worker}: {name}:{seed} stopped after {i} folds (time)")
                break
            test = pairs[i::FOLDS]
            train = [p for j, p in enumerate(pairs) if j % FOLDS != i]
            tf = time.monotonic()
            model = train_change_model(train, replace(config, seed=seed * 100 + i))  # type: ignore[arg-type]
            for p in test:
                prob = model.probability(p.before.data, p.after.data, p.before.bands)
                q = np.round(np.nan_to_num(prob, nan=0.0) * 255).astype(np.uint8)
                probs[f"{name}:{seed}/{p.name}"] = q
                labels[p.name] = p.label
                per_city[p.name] = Scores.of(q >= 128, p.label)
            fold_s.append(round(time.monotonic() - tf, 1))
            tmp = out / f"w{args.worker}.tmp.npz"
            np.savez_compressed(tmp, **probs, **{f"label/{k}": v for k, v in labels.items()})  # type: ignore[arg-type]
            os.replace(tmp, out / f"w{args.worker}.npz")
        pooled = sum(per_city.values(), Scores(0, 0, 0, 0))
        seconds = time.monotonic() - t0
        durations.append(seconds / scale)
        rec = {
            "job": f"{name}:{seed}", "pooled_f1": round(pooled.f1, 4), "pooled": pooled.as_dict(),
            "folds_done": len(fold_s), "worker": args.worker,
            "per_city_f1": {k: round(v.f1, 3) for k, v in sorted(per_city.items())},
            "fold_s": fold_s, "seconds": round(seconds, 1), "device": args.device,
        }  # fmt: skip
        line = json.dumps(rec)
        print(line, flush=True)
        with open(out / "results.jsonl", "a") as fh:
            fh.write(line + "\n")


def score(args: argparse.Namespace) -> None:
    _stub_rasterio()
    from sitewatch.analysis.changeeval import Scores

    probs: dict[str, dict[str, NDArray[np.uint8]]] = {}
    labels: dict[str, NDArray[np.bool_]] = {}
    for f in args.files:
        z = np.load(f)
        for k in z.files:
            if k.startswith("label/"):
                labels[k[6:]] = z[k]
            else:
                job, city = k.split("/")
                probs.setdefault(job, {})[city] = z[k]
    groups = {j: [j] for j in sorted(probs)}
    for spec in args.ensemble or []:
        groups[f"ens({spec})"] = spec.split(",")
    for gname, members in groups.items():
        if any(m not in probs for m in members):
            print(f"{gname}: missing {[m for m in members if m not in probs]}")
            continue
        cities = [c for c in sorted(labels) if all(c in probs[m] for m in members)]
        if len(cities) < len(labels):
            gname = f"{gname} [{len(cities)} cities]"
        for cut in args.cuts:
            per_city: dict[str, Scores] = {}
            for city in cities:
                label = labels[city]
                mean = np.mean([probs[m][city].astype(np.float32) for m in members], axis=0)
                per_city[city] = Scores.of(np.round(mean) >= cut, label)
            pooled = sum(per_city.values(), Scores(0, 0, 0, 0))
            by_city = " ".join(f"{c[:5]}={v.f1:.2f}" for c, v in per_city.items())
            print(
                f"{gname:40s} cut {cut:3d}: F1 {pooled.f1:.3f} P {pooled.precision:.3f} "
                f"R {pooled.recall:.3f} | {by_city}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="OSCD folder -> one .npz")
    e.add_argument("root")
    e.add_argument("-o", "--output", type=Path, required=True)
    r = sub.add_parser("run", help="train and predict the jobs of one worker")
    r.add_argument("data", type=Path)
    r.add_argument("--out", required=True)
    r.add_argument("--device", default="cpu")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--worker", type=int, default=0)
    r.add_argument(
        "--deadline",
        type=float,
        default=1e9,
        help="start no job expected to end later (seconds from the start)",
    )
    r.add_argument(
        "--hard-deadline",
        type=float,
        default=1e9,
        help="start no fold expected to end later (the job is kept partial)",
    )
    r.add_argument(
        "--claims",
        default="/tmp/change_sweep_claims",
        help="folder where workers claim jobs (empty it between sweeps)",
    )
    r.add_argument("--first-guess", type=float, default=60.0, help="seconds for a base job")
    r.add_argument("--steps", type=int, default=None, help="override every job's steps (smoke)")
    r.add_argument("--only", default="", help="comma-separated jobs name:seed (default: JOBS)")
    s = sub.add_parser("score", help="score saved probabilities, alone and as ensembles")
    s.add_argument("files", nargs="+")
    s.add_argument("--ensemble", action="append", help="comma-separated jobs name:seed")
    s.add_argument("--cuts", type=int, nargs="+", default=[128], help="uint8 thresholds")
    args = ap.parse_args()
    if args.cmd == "export":
        export(args.root, args.output)
    elif args.cmd == "run":
        run(args)
    else:
        score(args)


if __name__ == "__main__":
    main()
