"""Bearer-token checks: mutations always need the token; reads only when `protect_reads`.

Never open by default: with no token configured, mutations are refused (403) with the way to
set one. A missing header is 401 (with `WWW-Authenticate: Bearer`), a wrong token 403. The
comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from dashboards.settings import TOKEN_ENV, ServiceSettings


def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


def check_token(settings: ServiceSettings, authorization: str | None, what: str) -> None:
    """Raise 401/403 unless `authorization` carries the configured token."""
    if not settings.token:
        raise HTTPException(
            403,
            f"{what} is disabled: this service has no token. Start it with "
            f"{TOKEN_ENV}=<secret> (or `curate serve --token ...`) and send "
            "`Authorization: Bearer <secret>`.",
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(
            401,
            f"{what} needs `Authorization: Bearer <token>` (the service's {TOKEN_ENV})",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
        raise HTTPException(403, "wrong token")


def require_write(request: Request) -> None:
    """Dependency for every endpoint that starts, stops or writes something."""
    check_token(_settings(request), request.headers.get("authorization"), "this change")


def require_read(request: Request) -> None:
    """Dependency for reads: open unless the service was started with `protect_reads`."""
    settings = _settings(request)
    if settings.protect_reads:
        check_token(settings, request.headers.get("authorization"), "reading")
