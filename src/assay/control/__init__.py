"""The control store: tenants, API keys and the hash-chained audit log.

Kept apart from the data store so that admin commands work while the server runs:
a SQLite file ``control.sqlite`` in the data directory (several processes may write it),
or PostgreSQL for deployments with several server replicas.

>>> import tempfile
>>> from assay.control import open_control_store, role_allows
>>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
...     info, token = store.create_key("acme", "read", actor="cli:alice")
...     key = store.authenticate(token)
...     print(key.key_id == info.key_id, role_allows(key.role, "ingest"), store.verify_audit().ok)
True False True
"""

from assay.control.audit import (
    GENESIS_HASH,
    AuditRecord,
    AuditVerification,
    parse_anchor,
    verify_chain,
)
from assay.control.backend import SCHEMA_VERSION
from assay.control.keys import (
    ACTIONS,
    ROLES,
    KeyInfo,
    TenantInfo,
    parse_token,
    role_allows,
    validate_role,
    validate_tenant,
)
from assay.control.store import CONTROL_FILE, ControlStore, open_control_store

__all__ = [
    "ACTIONS",
    "CONTROL_FILE",
    "GENESIS_HASH",
    "ROLES",
    "SCHEMA_VERSION",
    "AuditRecord",
    "AuditVerification",
    "ControlStore",
    "KeyInfo",
    "TenantInfo",
    "open_control_store",
    "parse_anchor",
    "parse_token",
    "role_allows",
    "validate_role",
    "validate_tenant",
    "verify_chain",
]
