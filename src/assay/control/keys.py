"""API keys, tenants and roles: the values, their validation and the token format.

A token reads ``assay_<key_id>_<secret>``: ``key_id`` is 16 hex digits (public: it names
the key in listings and in the audit log), ``secret`` is ``secrets.token_urlsafe(32)``
(256 random bits). Only the SHA-256 of the secret is stored, so a copy of the database
does not hand out working keys. A plain SHA-256 (no salt, no slow hash) is enough because
the secret is random and long, not a password a person chose.

>>> token = new_token("00112233445566aa", "kDq1_x9-Zr0wS3cretS3cret")
>>> token
'assay_00112233445566aa_kDq1_x9-Zr0wS3cretS3cret'
>>> parse_token(token)
('00112233445566aa', 'kDq1_x9-Zr0wS3cretS3cret')
>>> parse_token("Bearer nonsense") is None
True
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any, Literal

from assay.errors import ConfigError

Role = Literal["admin", "ingest", "read"]
Action = Literal["admin", "ingest", "read"]

ROLES: tuple[str, ...] = ("admin", "ingest", "read")
ACTIONS: tuple[str, ...] = ("admin", "ingest", "read")
TOKEN_PREFIX = "assay"

# What each role may do (within its own tenant). Spelled out rather than derived from an
# order of roles, so that a future role that is not a superset of another stays simple.
_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "ingest": frozenset({"ingest", "read"}),
    "read": frozenset({"read"}),
}

_TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_NAME_MAX = 200


@dataclass(frozen=True)
class TenantInfo:
    """A tenant: the unit that owns models, data and keys."""

    name: str
    created_at: str


@dataclass(frozen=True)
class KeyInfo:
    """What is known about an API key, without its secret.

    Timestamps are UTC ISO-8601 strings (``2026-11-26T20:40:00.123456Z``).

    >>> key = KeyInfo("00112233445566aa", "acme", "ingest", None, "2026-11-26T20:40:00Z", None)
    >>> key.active, key.can("ingest", "acme"), key.can("ingest", "other"), key.can("admin")
    (True, True, False, False)
    """

    key_id: str
    tenant: str
    role: str
    name: str | None
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None

    def can(self, action: str, tenant: str | None = None) -> bool:
        """Whether this key may perform ``action`` (on ``tenant``'s data, when given).

        A key acts only within its own tenant; a revoked key can do nothing.
        """
        if not self.active or (tenant is not None and tenant != self.tenant):
            return False
        return role_allows(self.role, action)

    def to_dict(self) -> dict[str, Any]:
        """The key as a JSON-ready dict (there is no secret to leak)."""
        return asdict(self)


def role_allows(role: str, action: str) -> bool:
    """Whether ``role`` may perform ``action`` ("read", "ingest" or "admin").

    admin may do everything; ingest may send data and read it; read may only read.

    >>> [role_allows(r, "ingest") for r in ROLES]
    [True, True, False]
    >>> role_allows("read", "read"), role_allows("ingest", "admin")
    (True, False)
    """
    validate_role(role)
    if action not in _PERMISSIONS["admin"]:
        raise ConfigError(
            f"unknown action {action!r}", field="action", hint=f"one of: {', '.join(ACTIONS)}"
        )
    return action in _PERMISSIONS[role]


def validate_role(role: object) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise :class:`ConfigError`.

    >>> validate_role("read")
    'read'
    >>> validate_role("owner")
    Traceback (most recent call last):
    ...
    assay.errors.ConfigError: unknown role 'owner' (one of: admin, ingest, read)
    """
    if not isinstance(role, str) or role not in _PERMISSIONS:
        raise ConfigError(
            f"unknown role {role!r}", field="role", hint=f"one of: {', '.join(ROLES)}"
        )
    return role


def validate_tenant(tenant: object) -> str:
    """Return ``tenant`` if it is a valid tenant name, else raise :class:`ConfigError`.

    Valid: 1 to 63 characters of lower-case letters, digits, ``_`` and ``-``, starting
    with a letter or digit (safe in URLs, file names and metric labels).

    >>> validate_tenant("acme-eu")
    'acme-eu'
    >>> validate_tenant("Acme")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    assay.errors.ConfigError: invalid tenant name 'Acme' (1-63 characters of a-z, ...)
    """
    if not isinstance(tenant, str) or _TENANT_RE.fullmatch(tenant) is None:
        raise ConfigError(
            f"invalid tenant name {tenant!r}",
            field="tenant",
            hint="1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
        )
    return tenant


def validate_key_name(name: object) -> str | None:
    """Return a key's optional label if it is printable and at most 200 characters.

    >>> validate_key_name("ci uploader"), validate_key_name(None)
    ('ci uploader', None)
    """
    if name is None:
        return None
    if not isinstance(name, str) or not name.isprintable() or len(name) > _NAME_MAX:
        raise ConfigError(
            "invalid key name",
            field="name",
            hint=f"at most {_NAME_MAX} printable characters",
        )
    return name


def validate_actor(actor: object) -> str:
    """Return ``actor`` (who did something, for the audit log) if it is a non-empty string.

    >>> validate_actor("cli:alice")
    'cli:alice'
    """
    if not isinstance(actor, str) or not actor.strip() or len(actor) > _NAME_MAX:
        raise ConfigError("the actor must be a non-empty string", field="actor")
    return actor


def new_key_id() -> str:
    """A fresh random key id: 16 hex digits.

    >>> len(new_key_id()), set(new_key_id()) <= set("0123456789abcdef")
    (16, True)
    """
    return secrets.token_hex(8)


def new_secret() -> str:
    """A fresh random secret: 256 bits, URL-safe base64 (43 characters).

    >>> len(new_secret())
    43
    """
    return secrets.token_urlsafe(32)


def new_token(key_id: str, secret: str) -> str:
    """The token a client sends: ``assay_<key_id>_<secret>``.

    >>> new_token("00112233445566aa", "abc")
    'assay_00112233445566aa_abc'
    """
    return f"{TOKEN_PREFIX}_{key_id}_{secret}"


def parse_token(token: object) -> tuple[str, str] | None:
    """Split a token into ``(key_id, secret)``; ``None`` if it is malformed.

    The secret may itself contain ``_``; only the first two separators split.

    >>> parse_token("assay_00112233445566aa_a_b-c_0123456789abcdef")
    ('00112233445566aa', 'a_b-c_0123456789abcdef')
    >>> parse_token("assay_XYZ_0123456789abcdef") is None
    True
    """
    if not isinstance(token, str) or len(token) > 256:
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    key_id, secret = parts[1], parts[2]
    if _KEY_ID_RE.fullmatch(key_id) is None or _SECRET_RE.fullmatch(secret) is None:
        return None
    return key_id, secret


def hash_secret(secret: str) -> bytes:
    """The stored form of a secret: its SHA-256 digest (32 bytes).

    >>> hash_secret("abc").hex()[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(secret.encode("utf-8")).digest()
