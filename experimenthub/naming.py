"""Names of experiments and queues: what is allowed, and why.

An experiment's name appears in URLs, as an MLflow experiment name and as a queue name, so it is
1-128 letters, digits, ``_``, ``-`` or ``.``, starting with a letter or digit. The faces may reserve
more names (the REST API its first path segments) when they build the hub.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from .errors import InvalidName

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(name: Any, what: str = "experiment name", reserved: Collection[str] = ()) -> str:
    """``name`` if it may name an experiment (or queue); InvalidName saying why not."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidName(
            f"Invalid {what} {name!r}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter "
            f"or digit")
    if name in reserved:
        raise InvalidName(f"Invalid {what} {name!r}: it is a path of the REST API; choose another name")
    return name
