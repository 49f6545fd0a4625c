"""Helpers for the benchmark scripts: repeated timing, medians, a plain-text table, stop latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, rule, *body])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_stop(hub, name: str, running: Callable[[], list], timeout: float = 120.0) -> tuple[float, float]:
    """Once ``running()`` lists the fit's CmdStan processes: s of ``hub.stop_training(name)`` itself,
    and s until those processes are gone."""
    import psutil

    deadline = time.monotonic() + timeout
    while not (processes := running()) and time.monotonic() < deadline:
        time.sleep(0.02)
    start = time.perf_counter()
    hub.stop_training(name)
    call = time.perf_counter() - start
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes):
        time.sleep(0.005)
    return call, time.perf_counter() - start
