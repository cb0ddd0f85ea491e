"""The CLI tests use the ``sw`` fixture of tests/conftest.py (runs ``sitewatch ARGS`` in-process)."""
