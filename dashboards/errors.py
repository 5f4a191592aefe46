"""One mapping from the packages' errors to HTTP status codes, used by every endpoint.

The CLI maps `CurateError` subclasses to exit codes; the service maps the same classes to
status codes, so a refusal reads the same in both: 400 bad input or refused SQL, 404 unknown
snapshot or job, 409 a job in the wrong state, 503 warehouse busy (with the holder named and
Retry-After), 504 a query stopped at its time limit, 500 anything else.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from warehouse.errors import (
    BadInputError,
    CurateError,
    IntegrityError,
    QueryRefusedError,
    QueryTimeoutError,
    WarehouseBusyError,
)


class NotFoundError(BadInputError):
    """A snapshot, tag, job or file the request named does not exist."""


class ConflictError(CurateError):
    """The thing exists but is in a state that does not allow the request."""

    exit_code = 3


# most specific first
_STATUS: tuple[tuple[type[CurateError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (QueryRefusedError, 400, "refused"),
    (BadInputError, 400, "bad_input"),
    (QueryTimeoutError, 504, "time_limit"),
    (WarehouseBusyError, 503, "busy"),
    (ConflictError, 409, "conflict"),
    (IntegrityError, 409, "integrity"),
)


def status_for(exc: CurateError) -> tuple[int, str]:
    for cls, code, name in _STATUS:
        if isinstance(exc, cls):
            return code, name
    return 500, "error"


def not_found_if_missing(exc: BadInputError) -> BadInputError:
    """The packages say "no snapshot ..." / "no job ..." with a BadInputError: that is a 404."""
    text = str(exc)
    if text.startswith(("no snapshot", "no job", "no training run")):
        return NotFoundError(text)
    return exc


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CurateError)
    code, name = status_for(exc)
    headers = {"Retry-After": "5"} if code == 503 else None
    return JSONResponse({"error": name, "detail": str(exc)}, status_code=code, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(CurateError, _handle)
