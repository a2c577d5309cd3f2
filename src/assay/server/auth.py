"""Who is calling: the API key behind a request, and the role each route needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from assay.errors import AuthenticationError, PermissionDeniedError


@dataclass(frozen=True)
class Caller:
    """The authenticated key behind a request."""

    key_id: str
    tenant: str
    role: str

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"key:{self.key_id}"


def caller(request: Request) -> Caller:
    """The key behind ``request`` (401 without a valid one)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("missing API key", field="Authorization",
                                  hint="send 'Authorization: Bearer <key>'")  # fmt: skip
    return key_caller(request, token.strip(), field="Authorization")


def key_caller(request: Request, key: str, *, field: str) -> Caller:
    """The caller holding ``key`` (401 when it is unknown or revoked)."""
    info = request.app.state.control.authenticate(key)
    if info is None:
        raise AuthenticationError("unknown or revoked API key", field=field)
    return Caller(info.key_id, info.tenant, info.role)


def authorize(who: Caller, action: str) -> Caller:
    """``who``, when its role may do ``action`` (403 otherwise)."""
    from assay.control import role_allows

    if not role_allows(who.role, action):
        raise PermissionDeniedError(f"a {who.role!r} key may not {action}",
                                    field="Authorization")  # fmt: skip
    return who


def needs(action: str) -> Any:
    """A dependency that answers the caller when its role may do ``action``."""

    def check(request: Request) -> Caller:
        return authorize(caller(request), action)

    return check


Reader = Annotated[Caller, Depends(needs("read"))]
Ingester = Annotated[Caller, Depends(needs("ingest"))]
Admin = Annotated[Caller, Depends(needs("admin"))]
