"""Would the after-cover filter survive being chosen on training cities only?

``--after-cover built_or_bare,other`` raised CVA's pooled F1 on OSCD from 0.339 to 0.356, but
that rule was read off the same cities' false alarms. Here each leave-cities-out fold picks,
from every non-empty set of :data:`~sitewatch.analysis.landcover.COVERS`, the one whose filter
gives the best pooled F1 of CVA on the fold's TRAINING cities, and applies it to the fold's test
cities; the pooled F1 over all test cities is the nested (honest) figure. Patches whose cover
cannot be told are always kept, as the filter does.

    .venv/bin/python bench/change_covers.py ../shared/data/oscd [--folds 5,2,10] [--json]

CVA runs once per city (about a minute for the ten OSCD cities); the figures are in
bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sitewatch.analysis.change import detect_change
from sitewatch.analysis.changeeval import Scores, iter_oscd
from sitewatch.analysis.landcover import COVERS, kind_confusion

UNTOLD = "unknown"
"""The cover of a patch with no pixel that has data on both dates (as
:func:`~sitewatch.analysis.landcover.kind_confusion` names it): always kept."""


@dataclass
class City:
    """Detected pixels the labels confirm (``tp``) or not (``fp``) by their patch's AFTER cover,
    the city's labelled changed pixels and all its pixels."""

    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    changed: int = 0
    pixels: int = 0

    def scores(self, keep: frozenset[str]) -> Scores:
        """The city's confusion counts once patches whose cover is not in ``keep`` are dropped."""
        tp = sum(self.tp[k] for k in keep)
        fp = sum(self.fp[k] for k in keep)
        fn = self.changed - tp
        return Scores(tp, fp, fn, self.pixels - tp - fp - fn)


def tally(root: str) -> dict[str, City]:
    out: dict[str, City] = {}
    for pair in iter_oscd(root):
        before, after, bands = pair.before.data, pair.after.data, pair.before.bands
        mask = detect_change(before, after, bands=bands).mask
        found = kind_confusion(mask, pair.label, before, after, bands, by="cover_after")
        out[pair.name] = City(
            tp=Counter({c: n["tp"] for c, n in found.items()}),
            fp=Counter({c: n["fp"] for c, n in found.items()}),
            changed=int(pair.label.sum()),
            pixels=int(pair.label.size),
        )
    return out


def pooled(cities: dict[str, City], keep: dict[str, frozenset[str]]) -> Scores:
    """Summed confusion counts of the named cities, each filtered by its own set of covers."""
    return sum((cities[n].scores(k) for n, k in keep.items()), Scores(0, 0, 0, 0))


def nested(cities: dict[str, City], folds: int) -> dict[str, Any]:
    """Each fold's covers chosen by CVA's pooled F1 on its training cities, and the pooled
    scores of the test cities filtered by their fold's choice."""
    ordered = sorted(cities)
    choices = [
        frozenset({*s, UNTOLD})
        for r in range(1, len(COVERS) + 1)
        for s in itertools.combinations(COVERS, r)
    ]
    test_keep: dict[str, frozenset[str]] = {}
    chosen = []
    for i in range(folds):
        test = ordered[i::folds]
        train = [n for n in ordered if n not in test]

        def train_f1(keep: frozenset[str], train: list[str] = train) -> float:
            return pooled(cities, dict.fromkeys(train, keep)).f1

        best = max(choices, key=train_f1)
        chosen.append({"test": test, "covers": sorted(best - {UNTOLD})})
        test_keep.update(dict.fromkeys(test, best))
    return {"folds": chosen, "nested": pooled(cities, test_keep).as_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="the OSCD folder (one sub-folder per labelled city)")
    ap.add_argument("--folds", default="5,2,10", help="fold counts to run, comma-separated")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    cities = tally(args.root)
    everything = frozenset({*COVERS, UNTOLD})
    construction = frozenset({"built_or_bare", "other", UNTOLD})
    result: dict[str, Any] = {
        "no_filter": pooled(cities, dict.fromkeys(cities, everything)).as_dict(),
        "built_or_bare_other": pooled(cities, dict.fromkeys(cities, construction)).as_dict(),
        "nested": {str(k): nested(cities, k) for k in map(int, args.folds.split(","))},
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"CVA on {len(cities)} cities, pooled F1")
    print(f"  no filter:                    {result['no_filter']['f1']:.3f}")
    print(f"  built_or_bare,other (fixed):  {result['built_or_bare_other']['f1']:.3f}")
    for k, res in result["nested"].items():
        print(f"  chosen per fold, {k:>2} folds:    {res['nested']['f1']:.3f}")
        for fold in res["folds"]:
            print(f"      test {','.join(fold['test'])}: {','.join(fold['covers'])}")


if __name__ == "__main__":
    main()
