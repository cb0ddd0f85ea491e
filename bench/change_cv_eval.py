"""Leave-cities-out cross-validation of the learned change model on OSCD, against the default
unsupervised method (CVA) on the same test cities, with training time and peak memory.

    .venv/bin/python bench/change_cv_eval.py                  # 5 folds, the default training each
    .venv/bin/python bench/change_cv_eval.py --steps 300 --folds 5
    .venv/bin/python bench/change_cv_eval.py --oscd /path/to/oscd

Fold i tests on the sorted cities i, i + folds, ... and trains on the others (CPU, 1 thread by
default: the figures in bench/README.md were taken beside other work on a 2-core machine). The
same figures come from ``sitewatch change cv-oscd DIR --folds 5 --threads 1 --json``.
Weights are trained here and thrown away (the OSCD labels are non-commercial).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table
from sitewatch.analysis.change import ChangeConfig, detect_change
from sitewatch.analysis.changeeval import Scores, iter_oscd
from sitewatch.analysis.models import cross_validate, train_config

DEFAULT_OSCD = Path(__file__).resolve().parents[2] / "shared" / "data" / "oscd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oscd", type=Path, default=DEFAULT_OSCD)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps per fold")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock cap per fold")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    pairs = list(iter_oscd(args.oscd))
    t0 = time.perf_counter()
    limits = {k: v for k, v in (("steps", args.steps), ("minutes", args.minutes)) if v is not None}
    config = train_config(threads=args.threads, seed=args.seed, **limits)
    cv = cross_validate(pairs, args.folds, config)
    cv_s = time.perf_counter() - t0

    peer = Scores(0, 0, 0, 0)
    peer_f1: dict[str, float] = {}
    for p in pairs:  # the peer: default CVA (unsupervised, no training) on the same cities
        mask = detect_change(
            p.before.data, p.after.data, bands=p.before.bands, config=ChangeConfig()
        ).mask
        s = Scores.of(mask, p.label)
        peer, peer_f1[p.name] = peer + s, s.f1

    rows = []
    for fold in cv["folds"]:
        for name in fold["test"]:
            rows.append([fold["fold"], name, cv["per_item"][name]["f1"], peer_f1[name], fold["steps"], fold["seconds"]])  # fmt: skip
    print_table(
        "Per test city (F1)", ["fold", "city", "model F1", "CVA F1", "steps", "train s"], rows
    )
    rows = [[f["fold"], ",".join(f["test"]), f["pooled"]["f1"], f["pooled"]["precision"], f["pooled"]["recall"]] for f in cv["folds"]]  # fmt: skip
    print_table("Per fold (pooled over its test cities)", ["fold", "test", "F1", "precision", "recall"], rows)  # fmt: skip
    model_f1 = cv["pooled"]["f1"]
    print_table(
        f"Pooled over all test cities ({args.folds} folds, {config.steps} steps per fold)",
        ["detector", "pooled F1", "precision", "recall", "kappa"],
        [
            [
                "siam_diff_unet (leave-cities-out)",
                model_f1,
                cv["pooled"]["precision"],
                cv["pooled"]["recall"],
                cv["pooled"]["kappa"],
            ],
            [
                "cva (default, unsupervised)",
                round(peer.f1, 4),
                round(peer.precision, 4),
                round(peer.recall, 4),
                round(peer.kappa, 4),
            ],
        ],
    )
    ratio = model_f1 / peer.f1 if peer.f1 else float("inf")
    print(f"\nmodel / CVA pooled F1: {ratio:.2f}x; mean per-city F1 {cv['mean_f1']:.3f}")
    print(f"cross-validation wall time {cv_s:.0f} s; peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
