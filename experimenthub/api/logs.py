"""uvicorn's logging with the access lines redacted.

uvicorn's access log prints the request line with its query string. The API reads nothing from
the query string, and a token sent there (refused with 401) would otherwise be written to the log
in clear; so every query value is masked. Headers are never printed (uvicorn's access format has
none, and this formatter adds none).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.logging import AccessFormatter

from ..redact import MASK, redact_text


def redact_path(path: str) -> str:
    """``/x?token=abc&y`` -> ``/x?token=***&***``: every query value masked, keys kept."""
    base, question, query = str(path).partition("?")
    base = redact_text(base)
    if not question:
        return base
    masked = []
    for part in query.replace(";", "&").split("&"):
        key, equals, _ = part.partition("=")
        masked.append(f"{key}={MASK}" if equals else (MASK if part else part))
    return f"{base}?{'&'.join(masked)}"


class RedactingAccessFormatter(AccessFormatter):
    """uvicorn's access formatter with the request target passed through :func:`redact_path`
    before anything (``%(message)s`` included) is built from it."""

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:  # (client, method, path with query, version, status)
            record = copy.copy(record)
            client, method, path, version, status = args
            record.args = (client, method, redact_path(str(path)), version, status)
        return super().format(record)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with :class:`RedactingAccessFormatter` for access lines."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["access"]["()"] = f"{__name__}.RedactingAccessFormatter"
    return config
