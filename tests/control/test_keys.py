"""API keys and tenants in the control store, on SQLite and PostgreSQL.

Expected values are written out by hand or computed with hashlib, never with the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import sqlite3
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from assay.control import (
    CONTROL_FILE,
    SCHEMA_VERSION,
    ControlStore,
    KeyInfo,
    open_control_store,
    role_allows,
)
from assay.control import backend as backend_module
from assay.errors import (
    AssayError,
    ConfigError,
    MissingDependencyError,
    NotFoundError,
    SchemaVersionError,
    StoreUnavailableError,
)

from .conftest import RawSQL, is_postgres


def secret_of(token: str) -> str:
    prefix, key_id, secret = token.split("_", 2)
    assert prefix == "assay" and len(key_id) == 16
    return secret


# -- create, authenticate, list ----------------------------------------------------------


def test_create_key_returns_token_that_authenticates(store: ControlStore):
    info, token = store.create_key("acme", "ingest", actor="test", name="uploader")
    assert token.startswith(f"assay_{info.key_id}_")
    assert len(secret_of(token)) == 43  # token_urlsafe(32): 256 bits
    assert (info.tenant, info.role, info.name, info.revoked_at) == (
        "acme",
        "ingest",
        "uploader",
        None,
    )
    assert info.created_at.endswith("Z")
    assert store.authenticate(token) == info
    assert store.get_key(info.key_id) == info


def test_every_key_is_distinct(store: ControlStore):
    made = [store.create_key("acme", "read", actor="test") for _ in range(20)]
    assert len({info.key_id for info, _ in made}) == 20
    assert len({token for _, token in made}) == 20
    for info, token in made:
        assert store.authenticate(token) == info


def test_list_keys_by_tenant_and_never_a_secret(store: ControlStore):
    a1, t1 = store.create_key("acme", "admin", actor="test")
    b1, _ = store.create_key("beta", "read", actor="test")
    a2, _ = store.create_key("acme", "ingest", actor="test")
    assert [k.key_id for k in store.list_keys()] == [a1.key_id, b1.key_id, a2.key_id]
    assert [k.key_id for k in store.list_keys("acme")] == [a1.key_id, a2.key_id]
    assert store.list_keys("nobody") == []
    assert secret_of(t1) not in repr(store.list_keys())
    assert [t.name for t in store.list_tenants()] == ["acme", "beta"]


def test_tenant_created_once_with_one_audit_record(store: ControlStore):
    store.create_key("acme", "read", actor="test")
    store.create_key("acme", "read", actor="test")
    assert store.create_tenant("acme", actor="test").name == "acme"
    actions = [r.action for r in store.audit_records()]
    assert actions == ["tenant.create", "key.create", "key.create"]


def test_key_creation_and_revocation_are_audited(store: ControlStore):
    info, _ = store.create_key("acme", "ingest", actor="cli:alice", name="ci")
    store.revoke_key(info.key_id, actor="cli:bob")
    records = store.audit_records()
    assert [(r.action, r.actor, r.target, r.tenant) for r in records] == [
        ("tenant.create", "cli:alice", "acme", "acme"),
        ("key.create", "cli:alice", info.key_id, "acme"),
        ("key.revoke", "cli:bob", info.key_id, "acme"),
    ]
    assert records[1].details == {"role": "ingest", "name": "ci"}
    assert store.verify_audit().ok


# -- hashed storage and constant-time comparison --------------------------------------------


def test_only_the_sha256_of_the_secret_is_stored(store: ControlStore, raw: RawSQL, location: str):
    info, token = store.create_key("acme", "admin", actor="test")
    secret = secret_of(token)
    (stored,) = raw("SELECT secret_sha256 FROM control_keys WHERE key_id = ?", (info.key_id,))[0]
    assert bytes(stored) == hashlib.sha256(secret.encode()).digest()
    for table in ("control_keys", "control_audit", "control_tenants"):
        for row in raw(f"SELECT * FROM {table}"):
            assert secret not in repr(row) and token not in repr(row)
    if not is_postgres(location):
        store.close()  # checkpoints the WAL into the file
        files = list(Path(location).iterdir())
        assert Path(location) / CONTROL_FILE in files
        for path in files:
            assert secret.encode() not in path.read_bytes(), path.name


def test_authenticate_compares_digests_in_constant_time(
    store: ControlStore, monkeypatch: pytest.MonkeyPatch
):
    info, token = store.create_key("acme", "read", actor="test")
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    assert store.authenticate(token) == info
    wrong = f"assay_{info.key_id}_{'x' * 43}"
    assert store.authenticate(wrong) is None
    unknown = f"assay_{'0' * 16}_{secret_of(token)}"
    assert store.authenticate(unknown) is None
    assert len(calls) == 3  # the unknown key id is compared too (against a dummy digest)
    digest = hashlib.sha256(secret_of(token).encode()).digest()
    assert calls[0] == (digest, digest)
    assert calls[1] == (hashlib.sha256(b"x" * 43).digest(), digest)
    assert all(len(a) == len(b) == 32 for a, b in calls)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "assay",
        "assay_",
        "assay__",
        "Bearer assay_0011223344556677_aaaaaaaaaaaaaaaaaaaa",
        "assay_0011223344556677_",
        "assay_0011223344556677_short",
        "assay_00112233445566_aaaaaaaaaaaaaaaaaaaaaaaa",
        "assay_00112233445566GG_aaaaaaaaaaaaaaaaaaaaaaaa",
        "ASSAY_0011223344556677_aaaaaaaaaaaaaaaaaaaaaaaa",
        "other_0011223344556677_aaaaaaaaaaaaaaaaaaaaaaaa",
        "assay_0011223344556677_aaaaaaaaaaaaaaaa aaaaaaaa",
        "assay_0011223344556677_aaaaaaaaaaaaaaaaaaaaaaaa\n",
        "assay_0011223344556677_" + "a" * 5000,
        None,
        b"assay_0011223344556677_aaaaaaaaaaaaaaaaaaaaaaaa",
        42,
    ],
)
def test_malformed_tokens_are_rejected(store: ControlStore, token: object):
    store.create_key("acme", "admin", actor="test")
    assert store.authenticate(token) is None


def test_tampered_tokens_are_rejected(store: ControlStore):
    info, token = store.create_key("acme", "admin", actor="test")
    other, _ = store.create_key("acme", "admin", actor="test")
    secret = secret_of(token)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert store.authenticate(f"assay_{info.key_id}_{flipped}") is None
    assert store.authenticate(f"assay_{other.key_id}_{secret}") is None  # right secret, wrong id
    assert store.authenticate(token) == info


# -- revocation --------------------------------------------------------------------------


def test_revoked_key_no_longer_authenticates(store: ControlStore):
    info, token = store.create_key("acme", "ingest", actor="test")
    keep, keep_token = store.create_key("acme", "ingest", actor="test")
    revoked = store.revoke_key(info.key_id, actor="test")
    assert revoked.revoked_at is not None and not revoked.active
    assert store.authenticate(token) is None
    assert store.authenticate(keep_token) == keep
    listed = {k.key_id: k for k in store.list_keys()}
    assert listed[info.key_id] == revoked
    assert listed[keep.key_id].active


def test_revocation_is_seen_at_once_by_another_process_handle(store: ControlStore, location: str):
    info, token = store.create_key("acme", "read", actor="test")
    assert store.authenticate(token) == info
    with open_control_store(location) as other:
        other.revoke_key(info.key_id, actor="other")
    assert store.authenticate(token) is None


def test_revoking_twice_changes_nothing(store: ControlStore):
    info, _ = store.create_key("acme", "read", actor="test")
    first = store.revoke_key(info.key_id, actor="test")
    assert store.revoke_key(info.key_id, actor="test") == first
    assert [r.action for r in store.audit_records()].count("key.revoke") == 1


def test_unknown_key_is_not_found(store: ControlStore):
    for call in (
        lambda: store.revoke_key("00000000deadbeef", actor="test"),
        lambda: store.get_key("00000000deadbeef"),
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert isinstance(caught.value, LookupError) and isinstance(caught.value, AssayError)
        assert caught.value.http_status == 404 and caught.value.field == "key_id"
    assert [r.action for r in store.audit_records()] == []


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant", ["", "Acme", "-acme", "_acme", "a" * 64, "ac me", "acme\n", "acmé", "a.b", "a/b"]
)
def test_invalid_tenant_names_are_refused(store: ControlStore, tenant: str):
    with pytest.raises(ConfigError) as caught:
        store.create_key(tenant, "read", actor="test")
    assert caught.value.field == "tenant" and caught.value.http_status == 400
    assert store.list_keys() == [] and store.audit_records() == []


@pytest.mark.parametrize("tenant", ["a", "0", "acme", "acme-eu_2", "a" * 63])
def test_valid_tenant_names_are_accepted(store: ControlStore, tenant: str):
    info, _ = store.create_key(tenant, "read", actor="test")
    assert info.tenant == tenant


@pytest.mark.parametrize("role", ["", "owner", "Admin", "write", None])
def test_invalid_roles_are_refused(store: ControlStore, role: object):
    with pytest.raises(ConfigError) as caught:
        store.create_key("acme", role, actor="test")  # type: ignore[arg-type]
    assert caught.value.field == "role"
    assert "admin, ingest, read" in str(caught.value)
    assert store.list_keys() == []


@pytest.mark.parametrize(
    ("field", "kwargs"), [("actor", {"actor": ""}), ("name", {"name": "a\nb"})]
)
def test_invalid_actor_or_name_is_refused(store: ControlStore, field: str, kwargs: dict):
    args = {"actor": "test", **kwargs}
    with pytest.raises(ConfigError) as caught:
        store.create_key("acme", "read", **args)
    assert caught.value.field == field


def test_role_permissions():
    expected = {
        "admin": {"read": True, "ingest": True, "admin": True},
        "ingest": {"read": True, "ingest": True, "admin": False},
        "read": {"read": True, "ingest": False, "admin": False},
    }
    for role, actions in expected.items():
        for action, allowed in actions.items():
            assert role_allows(role, action) is allowed, (role, action)
    with pytest.raises(ConfigError, match="action"):
        role_allows("admin", "delete")
    with pytest.raises(ConfigError, match="role"):
        role_allows("root", "read")


def test_key_acts_only_within_its_tenant_and_while_active():
    key = KeyInfo("0011223344556677", "acme", "admin", None, "2026-01-01T00:00:00Z", None)
    assert key.can("admin", "acme") and key.can("read")
    assert not key.can("read", "beta")
    revoked = dataclasses.replace(key, revoked_at="2026-01-02T00:00:00Z")
    assert not revoked.can("read", "acme")


# -- opening, schema versions, backends ----------------------------------------------------


def test_reopening_keeps_keys(location: str):
    with open_control_store(location) as first:
        info, token = first.create_key("acme", "read", actor="test")
    with open_control_store(location) as second:
        assert second.authenticate(token) == info
        assert second.verify_audit().records == 2


def test_newer_schema_is_refused(store: ControlStore, raw: RawSQL, location: str):
    store.create_key("acme", "read", actor="test")
    store.close()
    raw("UPDATE control_schema SET version = ? WHERE id = 1", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaVersionError) as caught:
        open_control_store(location)
    err = caught.value
    assert isinstance(err, RuntimeError) and err.http_status == 503
    assert f"schema version {SCHEMA_VERSION + 1}" in str(err) and "upgrade Assay" in str(err)


def test_older_schema_is_upgraded(
    store: ControlStore, raw: RawSQL, location: str, monkeypatch: pytest.MonkeyPatch
):
    info, token = store.create_key("acme", "read", actor="test")
    store.close()
    upgraded = {**backend_module.MIGRATIONS, 2: ("CREATE TABLE control_extra (x {bigint})",)}
    monkeypatch.setattr(backend_module, "MIGRATIONS", upgraded)
    monkeypatch.setattr(backend_module, "SCHEMA_VERSION", 2)
    with open_control_store(location) as again:
        assert again.authenticate(token) == info
    assert raw("SELECT version FROM control_schema") == [(2,)]
    assert raw("SELECT count(*) FROM control_extra") == [(0,)]


def test_unsupported_locations_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        open_control_store("mysql://user:pw@db/x")
    assert caught.value.field == "store" and "pw" not in str(caught.value)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError) as caught:
        open_control_store(a_file)
    assert caught.value.field == "data_dir"


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path):
    (tmp_path / CONTROL_FILE).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailableError) as caught:
        open_control_store(tmp_path)
    assert caught.value.http_status == 503


def test_sqlite_store_uses_wal_mode(tmp_path: Path):
    with open_control_store(tmp_path) as control:
        control.create_key("acme", "read", actor="test")
        conn = sqlite3.connect(tmp_path / CONTROL_FILE)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.close()


def test_postgres_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependencyError) as caught:
        open_control_store("postgresql:///whatever")
    assert "assay[postgres]" in str(caught.value) and isinstance(caught.value, ImportError)


def test_unreachable_postgres_is_unavailable_and_hides_the_password():
    pytest.importorskip("psycopg")
    with pytest.raises(StoreUnavailableError) as caught:
        open_control_store("postgresql://assay:hunter2@127.0.0.1:1/assay")
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


# -- threads ---------------------------------------------------------------------------------


def test_one_store_shared_by_many_threads(store: ControlStore):
    barrier = threading.Barrier(8)

    def work(i: int) -> list[tuple[KeyInfo, str]]:
        barrier.wait()
        made = []
        for j in range(5):
            made.append(store.create_key(f"t{i % 3}", "ingest", actor=f"thread-{i}"))
            store.append_audit(f"thread-{i}", "batch", "fraud", {"j": j}, tenant=f"t{i % 3}")
            assert store.authenticate(made[-1][1]) == made[-1][0]
        return made

    with ThreadPoolExecutor(8) as pool:
        made = [pair for result in pool.map(work, range(8)) for pair in result]
    assert len(made) == 40
    for info, token in made:
        assert store.authenticate(token) == info
    check = store.verify_audit()
    assert check.ok, check
    assert check.records == 40 + 40 + 3  # keys, batches, three tenants
    assert [r.seq for r in store.audit_records()] == list(range(1, 84))
