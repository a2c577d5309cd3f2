"""Errors as ``application/problem+json`` (RFC 9457) naming the offending field."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from assay.errors import AssayError, AuthenticationError, BatchValidationError, OverloadedError

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, *, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:  # fmt: skip
    """A problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = dict(headers or {})
    if "retry_after" in extra:
        headers["Retry-After"] = str(max(1, round(extra.pop("retry_after"))))
        body.pop("retry_after", None)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def assay_error_handler(request: Request, err: Exception) -> JSONResponse:
    """Render any :class:`AssayError` with its own status."""
    assert isinstance(err, AssayError)
    extra: dict[str, Any] = {}
    if err.field:
        extra["field"] = err.field
    if isinstance(err, BatchValidationError):
        extra["errors"] = err.problems
    if isinstance(err, OverloadedError):
        extra["retry_after"] = err.retry_after
    # RFC 9110: a 401 names the scheme that would be accepted
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(err, AuthenticationError) else None
    return problem(err.http_status, type(err).__name__, str(err), headers=headers, **extra)


async def http_error_handler(request: Request, err: Exception) -> JSONResponse:
    """Routing errors (unknown path 404, wrong method 405) as problem+json too."""
    assert isinstance(err, HTTPException)
    try:
        title = HTTPStatus(err.status_code).phrase
    except ValueError:  # not a registered status code
        title = "HTTP error"
    detail = err.detail if isinstance(err.detail, str) else title
    return problem(err.status_code, title, detail, headers=dict(err.headers or {}))


async def validation_error_handler(request: Request, err: Exception) -> JSONResponse:
    """FastAPI's request validation, as problem+json with each field's path."""
    assert isinstance(err, RequestValidationError)
    errors = [{"field": _field(e), "reason": e["msg"]} for e in err.errors()]
    first = errors[0] if errors else {"field": None, "reason": "invalid request"}
    return problem(422, "RequestValidationError", f"{first['field']}: {first['reason']}",
                   field=first["field"], errors=errors)  # fmt: skip


def _field(error: dict[str, Any]) -> str:
    """The path of a validation error (``features.amount``; ``body`` for the whole body)."""
    if error.get("type") == "json_invalid":  # its location is a character position
        return "body"
    return ".".join(str(p) for p in error["loc"] if p != "body") or "body"
