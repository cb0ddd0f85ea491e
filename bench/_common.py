"""Helpers shared by the benchmarks: timing, percentiles, peak memory, a results table."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["peak_rss_mb", "percentile", "print_table", "timed", "timed_cpu"]


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``func`` once; return (wall seconds, result)."""
    t0 = time.perf_counter()
    result = func()
    return time.perf_counter() - t0, result


def timed_cpu(func: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``func`` once; return (wall seconds, CPU seconds of this process, result).

    On a shared machine the CPU time is what the work costs on an idle one (for in-process work).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    result = func()
    return time.perf_counter() - t0, time.process_time() - c0, result


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``."""
    if not values:
        return float("nan")
    cuts = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return cuts[max(0, min(98, round(q) - 1))]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table (pasted as is into bench/README.md)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(_fmt(v) for v in row) + " |")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)
