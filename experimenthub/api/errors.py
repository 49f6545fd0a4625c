"""The hub's typed errors as HTTP answers, mapped in one place by class.

Routes never choose status codes for errors; they call the hub and let its exception reach
these handlers. Every answer carries a ``detail`` a person can act on, with URI passwords masked
(a driver's message may quote the URL it failed on).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .. import errors
from ..redact import redact_text

log = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    # most specific first: NoData is a DataError
    (errors.NoData, 400),
    (errors.DataError, 400),
    (errors.InvalidConfig, 400),
    (errors.InvalidName, 400),
    (errors.UnknownExperimentType, 400),
    (errors.GroupsRejected, 400),
    (errors.LimitExceeded, 413),
    (errors.UnsafeModel, 403),
    (errors.ExperimentNotFound, 404),
    (errors.PlotNotFound, 404),
    (errors.RunNotFound, 404),
    (errors.ExperimentExists, 409),
    (errors.Busy, 409),
    (errors.NotReady, 409),
    (errors.TrainingFailed, 409),
    (errors.TrackingError, 503),
    (errors.DatastreamError, 503),
]


def status_for(exc: Exception) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


async def _hub_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": redact_text(str(exc))}, status_code=status_for(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        where = next(p for p in problems if p.get("type") == "json_invalid")
        position = where.get("loc", ("body", "?"))[-1]
        reason = (where.get("ctx") or {}).get("error", "invalid JSON")
        return JSONResponse({"detail": f"Malformed JSON in the request body at position {position}: {reason}"},
                            status_code=400)
    by_location: dict[str, list[str]] = {}
    for problem in problems:
        # pydantic tags each branch of a union with its type ("list[dict[str,any]]"): drop those
        parts = [str(x) for x in problem.get("loc", ()) if x != "body" and "[" not in str(x)]
        location = "request body" + (f" at {'.'.join(parts)}" if parts else "")
        message = str(problem.get("msg", "invalid"))
        if message not in by_location.setdefault(location, []):
            by_location[location].append(message)
    detail = "; ".join(f"{where}: {' or '.join(messages)}" for where, messages in by_location.items())
    return JSONResponse({"detail": detail}, status_code=422)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug of ours, not the client's: still JSON with a detail, and the traceback in the log."""
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": redact_text(f"Internal error ({type(exc).__name__}: {exc}); this is a bug of "
                                               f"the ExperimentHub server, the request may be retried")},
                        status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ExperimentHubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
