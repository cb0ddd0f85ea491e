"""The ``sitewatch`` command line: a click group, one module per subcommand."""

from __future__ import annotations

from .main import cli, main

__all__ = ["cli", "main"]
