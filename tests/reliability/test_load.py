"""A short version of bench/load_web.py: concurrent clients on a live server keep every write."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load_web.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_sitewatch_bench_load_web", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_concurrent_clients_keep_every_write(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    code = bench.run(clients=20, duration=5.0, db=None, peer_seconds=0)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "failed requests: 0" in out and ", lost 0" in out
    found = re.search(r"writes acknowledged (\d+), lost (\d+)", out)
    assert found is not None, out
    assert int(found[1]) >= 20 and int(found[2]) == 0, out  # the load really wrote, none lost
