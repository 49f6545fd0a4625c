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
