"""Numeric options: ``nan``/``inf`` and values outside a quantity's domain are refused at parse time."""

from __future__ import annotations

from typing import Any

import click
import pytest

from sitewatch.cli.options import Finite


def _leaves(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    if isinstance(cmd, click.Group):
        out = []
        for name in cmd.list_commands(click.Context(cmd)):
            sub = cmd.get_command(click.Context(cmd), name)
            assert sub is not None
            out += _leaves(sub, (*path, name))
        return out
    return [(" ".join(path), cmd)]


def test_no_float_option_takes_nan() -> None:
    """click's FLOAT and FloatRange let ``nan`` through every bound: each float option is Finite."""
    from sitewatch.cli.main import cli

    loose = [
        f"{name} {'/'.join(p.opts)}"
        for name, cmd in _leaves(cli)
        for p in cmd.params
        if isinstance(p.type, click.types.FloatParamType) and not isinstance(p.type, Finite)
    ]
    assert len(_leaves(cli)) > 40
    assert loose == []


def test_finite_type() -> None:
    t = Finite(0, 90, min_open=True)
    assert t.convert("45", None, None) == 45.0
    for bad in ("nan", "inf", "-inf", "0", "91", "x"):
        with pytest.raises(click.BadParameter):
            t.convert(bad, None, None)
    assert Finite().convert("-1e9", None, None) == -1e9
    assert Finite()._describe_range() == ""  # no "x<=None" in the help


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sites", "add", "--name", "x", "--lat", "nan", "--lon", "3"), "'nan' is not a finite"),
        (("sites", "add", "--name", "x", "--lat", "1", "--lon", "3", "--confidence", "nan"),
         "'nan' is not a finite"),
        (("sites", "list", "--bbox", "nan,1,2,3"), "finite numbers"),
        (("measure", "distance", "126,39", "126.1,39", "--position-sigma", "-1"), "x>=0"),
        (("measure", "shadow", "--base", "126,39", "--tip", "126.0001,39", "--sun-azimuth", "180",
          "--sun-elevation", "90"), "0<x<90"),
        (("measure", "tunnel", "--spoil-volume", "1000", "--width", "5", "--height", "5",
          "--bulking", "0.5"), "x>=1"),
        (("terrain", "derive", "dem.tif", "-o", "x.tif", "--altitude", "100"), "0<=x<=90"),
        (("imagery", "search", "--bbox", "nan,1,2,3"), "finite numbers"),
        (("imagery", "search", "--bbox", "1,3,2,1"), "south 3.0 must be below north 1.0"),
        (("imagery", "search", "--bbox", "1,1,2,3", "--size", "-1"), "x>0"),
        (("imagery", "search", "--bbox", "1,1,2,3", "--limit", "0"), "x>=1"),
        (("change", "detect", "a", "b", "-o", "c.tif", "--min-area", "nan"), "'nan' is not a finite"),
        (("change", "train-oscd", "d", "-o", "m.pt", "--hard-fraction", "2"), "0<=x<=1"),
        (("change", "train-oscd", "d", "-o", "m.pt", "--crop", "5"), "x>=16"),
        (("change", "train-oscd", "d", "-o", "m.pt", "--dropout", "1"), "0<=x<1"),
        (("change", "train-oscd", "d", "-o", "m.pt", "--ema", "nan"), "'nan' is not a finite"),
        (("change", "train-oscd", "d", "-o", "m.pt", "--lr", "0"), "x>0"),
        (("change", "train-oscd", "d", "-o", "m.pt", "--widths", "16"), "such as 16,32,64,128"),
        (("change", "cv-oscd", "d", "--widths", "16,x"), "two or more positive integers"),
        (("change", "cv-oscd", "d", "--widths", "16,0"), "two or more positive integers"),
        (("change", "cv-oscd", "d", "--normalisation", "minmax"), "zscore_indices"),
        (("change", "cv-oscd", "d", "--folds", "1"), "x>=2"),
        (("change", "cv-oscd", "d", "--retries", "-1"), "x>=0"),
        (("range", "rings", "--from", "126,39", "--azimuths", "100000000", "-o", "r.geojson"),
         "8<=x<=36000"),
        (("search", "triage", "run", "--limit", "0"), "x>=1"),
        (("scenario", "make", "out", "--gsd", "0"), "x>0"),
        (("scenario", "make", "out", "--span-days", "-5"), "span_days must be >= 0"),
        (("users", "token", "x", "--days", "-1"), "x>0"),
    ],
)  # fmt: skip
def test_bad_number_is_refused_before_any_work(
    sw: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SITEWATCH_HOME", str(tmp_path / "home"))
    r = sw(*args)
    assert r.code == 2, r.err
    assert message in r.err
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "home"])  # nothing written
