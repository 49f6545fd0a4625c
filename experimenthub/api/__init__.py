"""The documented REST API over a hub: ``create_app(hub)`` and the in-process server."""

from .app import create_app

__all__ = ["create_app"]
