"""Errors as ``application/problem+json`` (RFC 9457) naming the offending field."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from assay.errors import AssayError, BatchValidationError, OverloadedError

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {}
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
    return problem(err.http_status, type(err).__name__, str(err), **extra)


async def validation_error_handler(request: Request, err: Exception) -> JSONResponse:
    """FastAPI's request validation, as problem+json with each field's path."""
    assert isinstance(err, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "reason": e["msg"]}
        for e in err.errors()
    ]
    first = errors[0] if errors else {"field": None, "reason": "invalid request"}
    return problem(422, "RequestValidationError", f"{first['field']}: {first['reason']}",
                   field=first["field"], errors=errors)  # fmt: skip
