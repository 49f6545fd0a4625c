"""The documented REST API over a hub: ``create_app(hub)`` and the in-process server.

``create_app`` is imported on first use, so that ``experimenthub.api.paths`` (the names the API
reserves) can be read without importing FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
