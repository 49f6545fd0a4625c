"""Constants and small helpers shared by test modules (fixtures live in the conftest files)."""

from __future__ import annotations

import socket

SEED_CONFIG = {
    "setup": {"target": "value", "ds": "ds"},
    "create_model": {"model_type": "Prophet",
                     "params": {"seasonality_mode": "multiplicative", "daily_seasonality": True}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout`` s.
    A liveness bound, not a speed target: speeds are measured in benchmarks/."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def never(condition, within: float = 1.0, what: str = "condition") -> None:
    """Poll ``condition`` for ``within`` s and fail as soon as it returns something truthy.

    For checks that something does NOT happen when nothing can be waited on instead (no event the
    bad outcome would send, no marker to put behind it): unlike a sleep followed by one look, it
    catches the bad thing whenever it shows during the window, even for a moment, and says when."""
    import time

    start = time.monotonic()
    while True:
        value = condition()
        if value:
            raise AssertionError(f"{what}: seen {time.monotonic() - start:.2f} s into the {within} s in which "
                                 f"it must not happen (the condition gave {value!r})")
        if time.monotonic() - start > within:
            return
        time.sleep(0.02)


def stop_process_group(process) -> None:
    """Terminate a server started with ``start_new_session=True`` and everything it started."""
    import os
    import subprocess

    try:
        os.killpg(process.pid, 15)
    except ProcessLookupError:  # it exited already (its group with it)
        process.wait(timeout=15)
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=15)


def run_cell(client, code: str, timeout: float = 120) -> str:
    """Execute a cell in a real kernel (a jupyter_client client); return its stdout; fail on an error."""
    import textwrap

    out: list[str] = []
    errors: list[str] = []

    def hook(message):
        kind, content = message["msg_type"], message["content"]
        if kind == "stream" and content["name"] == "stdout":
            out.append(content["text"])
        elif kind == "error":
            errors.append("\n".join(content["traceback"]))

    reply = client.execute_interactive(textwrap.dedent(code), timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(errors)
    return "".join(out).strip()
