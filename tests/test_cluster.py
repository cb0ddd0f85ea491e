"""Connecting to a dask.distributed scheduler from a user-typed address."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from sitewatch.cluster import connect
from sitewatch.errors import InputError


@pytest.mark.parametrize("address", ["localhost", "tcp://", "  "])
def test_an_address_that_is_not_one_is_refused(address: str) -> None:
    with pytest.raises(InputError, match=r"tcp://host:port"):
        connect(address)


def test_a_scheduler_that_does_not_answer_is_named() -> None:
    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        InputError, match=rf"cannot reach the dask scheduler at tcp://127.0.0.1:{port}"
    ):
        connect(f"tcp://127.0.0.1:{port}", timeout="2s")


def test_monitor_run_refuses_a_bad_scheduler_address(sw: Callable[..., Any]) -> None:
    assert sw("sites", "add", "base", "--name", "Base", "--lat", "39.0", "--lon", "125.7").code == 0
    r = sw("monitor", "run", "--site", "base", "--scheduler", "localhost")
    assert r.code == 2, (r.code, r.err)
    assert "not a dask scheduler address" in r.err and "Traceback" not in r.err
