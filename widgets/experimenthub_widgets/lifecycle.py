"""Closing a tree of widgets (their front-end views go away, and their comms with them)."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w


def close_tree(widget: Any) -> None:
    """Close ``widget`` and every widget below it (``children`` of boxes, recursively)."""
    stack, seen = [widget], set()
    while stack:
        current = stack.pop()
        if id(current) in seen or not isinstance(current, w.Widget):
            continue
        seen.add(id(current))
        stack.extend(getattr(current, "children", ()) or ())
        try:
            w.Widget.close(current)
        except Exception:  # closing twice, or a comm already gone: nothing left to do
            pass


class Quiet:
    """A per-thread "code is setting this" flag: observers skip the changes code makes, while a
    user's change arriving on another thread at the same moment still counts.

    >>> quiet = Quiet()
    >>> with quiet:
    ...     bool(quiet)
    True
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def __bool__(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def __enter__(self) -> Quiet:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1
