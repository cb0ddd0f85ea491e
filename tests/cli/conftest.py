"""Running the CLI in-process, as a user would from the shell."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sitewatch.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Runner = Callable[..., Result]


@pytest.fixture
def sw(capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run ``sitewatch ARGS...``; returns exit code, stdout and stderr."""

    def run(*args: str, input: str | None = None) -> Result:
        import io
        import sys

        old_stdin = sys.stdin
        if input is not None:
            sys.stdin = io.StringIO(input)
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
        finally:
            sys.stdin = old_stdin
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
