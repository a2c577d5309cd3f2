"""The hash-chained audit log, on SQLite and PostgreSQL: appends, reads, tampering, processes.

Every tampering is done behind the store's back with plain SQL, the way an intruder or a
careless hand would. Expected hashes are recomputed here with hashlib and json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from assay.control import GENESIS_HASH, AuditRecord, ControlStore, open_control_store
from assay.control import store as store_module
from assay.errors import ConfigError

from .conftest import RawSQL

ASSAY = Path(sys.executable).with_name("assay")
COLUMNS = "seq, timestamp, tenant, actor, action, target, details, prev_hash, hash"


def expected_hash(rec: AuditRecord) -> str:
    """The hash by the definition: sha256 of sorted, spaceless JSON of the other fields."""
    body = {
        "seq": rec.seq,
        "timestamp": rec.timestamp,
        "tenant": rec.tenant,
        "actor": rec.actor,
        "action": rec.action,
        "target": rec.target,
        "details": rec.details,
        "prev_hash": rec.prev_hash,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def rehash(rec: AuditRecord, **changes: Any) -> AuditRecord:
    """``rec`` with ``changes`` and a hash recomputed to match (a careful forger)."""
    changed = dataclasses.replace(rec, **changes)
    return dataclasses.replace(changed, hash=expected_hash(changed))


def rewrite(raw: RawSQL, records: list[AuditRecord]) -> None:
    """Replace the whole stored log with ``records``."""
    raw("DELETE FROM control_audit")
    for r in records:
        raw(
            f"INSERT INTO control_audit ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.seq,
                r.timestamp,
                r.tenant,
                r.actor,
                r.action,
                r.target,
                json.dumps(r.details, sort_keys=True, separators=(",", ":")),
                r.prev_hash,
                r.hash,
            ),
        )


@pytest.fixture
def six(store: ControlStore) -> list[AuditRecord]:
    """Six records in the log."""
    return [
        store.append_audit("server", "batch", "fraud", {"n": i, "ids": ["a", "b"]}, tenant="acme")
        for i in range(1, 7)
    ]


# -- appending and reading ---------------------------------------------------------------------


def test_records_chain_by_definition(store: ControlStore, six: list[AuditRecord]):
    assert [r.seq for r in six] == [1, 2, 3, 4, 5, 6]
    assert six[0].prev_hash == GENESIS_HASH == "0" * 64
    for before, after in itertools.pairwise(six):
        assert after.prev_hash == before.hash
    for rec in six:
        assert rec.hash == expected_hash(rec)
        assert rec.timestamp.endswith("Z") and rec.timestamp[10] == "T"
    assert store.audit_records() == six
    assert store.audit_head() == (6, six[-1].hash)
    check = store.verify_audit()
    assert (check.ok, check.records, check.first_bad_seq, check.reason) == (True, 6, None, None)


def test_empty_log_verifies(store: ControlStore):
    assert store.verify_audit().ok and store.verify_audit().records == 0
    assert store.audit_head() == (0, GENESIS_HASH)


def test_audit_records_filters(store: ControlStore):
    for i in range(6):
        store.append_audit("a", "x", f"t{i}", {}, tenant=("acme", "beta", None)[i % 3])
    assert [r.seq for r in store.audit_records(tenant="acme")] == [1, 4]
    assert [r.seq for r in store.audit_records(since_seq=4)] == [5, 6]
    assert [r.seq for r in store.audit_records(limit=2)] == [1, 2]
    assert [r.seq for r in store.audit_records(limit=2, newest_first=True)] == [6, 5]
    assert [r.seq for r in store.audit_records(tenant="beta", since_seq=2)] == [5]
    assert store.audit_records(limit=0) == []


@pytest.mark.parametrize(
    ("details", "field"),
    [({"x": float("nan")}, "details"), ({"x": {1, 2}}, "details"), (["a"], "details")],
)
def test_details_must_be_a_json_object(store: ControlStore, details: Any, field: str):
    with pytest.raises(ConfigError) as caught:
        store.append_audit("a", "x", "t", details)
    assert caught.value.field == field
    assert store.audit_records() == []


def test_action_target_actor_and_tenant_are_checked(store: ControlStore):
    for kwargs, field in [
        ({"action": ""}, "action"),
        ({"target": ""}, "target"),
        ({"actor": " "}, "actor"),
        ({"tenant": "Not A Tenant"}, "tenant"),
    ]:
        args: dict[str, Any] = {"actor": "a", "action": "x", "target": "t", "details": {}}
        with pytest.raises(ConfigError) as caught:
            store.append_audit(**{**args, **kwargs})
        assert caught.value.field == field


def test_unicode_details_round_trip(store: ControlStore):
    rec = store.append_audit("cli:zoë", "note", "modèle", {"text": "größer – 😀"})
    assert store.audit_records() == [rec]
    assert store.verify_audit().ok


def test_dates_in_details_are_stored_as_iso_strings(store: ControlStore):
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    rec = store.append_audit("key:x", "evaluation.run", "fraud", {"start": at, "end": None})
    assert rec.details == {"start": "2026-11-01T12:00:00+00:00", "end": None}
    assert store.audit_records() == [rec] and store.verify_audit().ok


# -- tampering -------------------------------------------------------------------------------


def _modify_field(raw: RawSQL, six: list[AuditRecord]) -> None:
    raw("UPDATE control_audit SET actor = ? WHERE seq = 3", ("mallory",))


def _modify_details(raw: RawSQL, six: list[AuditRecord]) -> None:
    raw("UPDATE control_audit SET details = ? WHERE seq = 3", ('{"ids":["a","b"],"n":300}',))


def _unreadable_details(raw: RawSQL, six: list[AuditRecord]) -> None:
    raw("UPDATE control_audit SET details = ? WHERE seq = 3", ("{not json",))


def _delete(raw: RawSQL, six: list[AuditRecord]) -> None:
    raw("DELETE FROM control_audit WHERE seq = 3")


def _delete_first(raw: RawSQL, six: list[AuditRecord]) -> None:
    raw("DELETE FROM control_audit WHERE seq = 1")


def _delete_and_renumber(raw: RawSQL, six: list[AuditRecord]) -> None:
    rest = [rehash(r, seq=r.seq - 1) for r in six[3:]]
    rewrite(raw, [*six[:2], *rest])


def _insert_forged(raw: RawSQL, six: list[AuditRecord]) -> None:
    forged = rehash(six[2], actor="mallory", prev_hash="f" * 64)  # own hash fine, no chain
    rewrite(raw, [*six[:2], forged, *[rehash(r, seq=r.seq + 1) for r in six[2:]]])


def _swap(raw: RawSQL, six: list[AuditRecord]) -> None:
    third, fourth = six[2], six[3]
    rewrite(
        raw,
        [*six[:2], dataclasses.replace(fourth, seq=3), dataclasses.replace(third, seq=4), *six[4:]],
    )


def _swap_and_rehash(raw: RawSQL, six: list[AuditRecord]) -> None:
    third, fourth = six[2], six[3]
    rewrite(raw, [*six[:2], rehash(fourth, seq=3), rehash(third, seq=4), *six[4:]])


def _new_genesis(raw: RawSQL, six: list[AuditRecord]) -> None:
    rewrite(raw, [rehash(six[0], prev_hash="1" * 64), *six[1:]])


TAMPERING: dict[str, tuple[Callable[[RawSQL, list[AuditRecord]], None], int, str]] = {
    "modify a field": (_modify_field, 3, "record modified"),
    "modify details": (_modify_details, 3, "record modified"),
    "unreadable details": (_unreadable_details, 3, "record modified"),
    "delete a record": (_delete, 3, "record 3 is missing"),
    "delete the first record": (_delete_first, 1, "record 1 is missing"),
    "delete and renumber with new hashes": (_delete_and_renumber, 3, "prev_hash does not match"),
    "insert a forged record": (_insert_forged, 3, "prev_hash does not match"),
    "swap two records": (_swap, 3, "record modified"),
    "swap two records with new hashes": (_swap_and_rehash, 3, "prev_hash does not match"),
    "replace the genesis": (_new_genesis, 1, "genesis"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_detected_at_the_first_bad_record(
    store: ControlStore, six: list[AuditRecord], raw: RawSQL, case: str
):
    tamper, first_bad, reason = TAMPERING[case]
    tamper(raw, six)
    check = store.verify_audit()
    assert not check.ok
    assert check.first_bad_seq == first_bad, check
    assert reason in (check.reason or ""), check
    assert check.records == first_bad - 1
    assert str(check).startswith(f"audit log broken at record {first_bad}: ")


def test_a_rehashed_change_is_caught_at_the_next_record(
    store: ControlStore, six: list[AuditRecord], raw: RawSQL
):
    rewrite(raw, [*six[:2], rehash(six[2], actor="mallory"), *six[3:]])
    check = store.verify_audit()
    assert (check.ok, check.first_bad_seq) == (False, 4)
    assert "hash of record 3" in (check.reason or "")


def test_a_forged_record_that_chains_is_caught_at_the_next_record(
    store: ControlStore, six: list[AuditRecord], raw: RawSQL
):
    forged = rehash(six[2], actor="mallory", prev_hash=six[1].hash)
    rewrite(raw, [*six[:2], forged, *[dataclasses.replace(r, seq=r.seq + 1) for r in six[2:]]])
    check = store.verify_audit()
    assert (check.ok, check.first_bad_seq) == (False, 4)


def test_truncating_the_tail_needs_an_anchor(
    store: ControlStore, six: list[AuditRecord], raw: RawSQL
):
    anchor = store.audit_head()
    assert anchor == (6, six[-1].hash)
    raw("DELETE FROM control_audit WHERE seq > 4")
    # documented limitation: a shorter chain is still a valid chain
    assert store.verify_audit().ok and store.verify_audit().records == 4
    check = store.verify_audit(anchor=anchor)
    assert (check.ok, check.first_bad_seq, check.records) == (False, 5, 4)
    assert "removed from the end" in (check.reason or "")


def test_a_consistent_rewrite_needs_an_anchor(
    store: ControlStore, six: list[AuditRecord], raw: RawSQL
):
    anchor = store.audit_head()
    forged, prev = [*six[:2]], six[1].hash
    for rec in six[2:]:
        forged.append(rehash(rec, actor="mallory", prev_hash=prev))
        prev = forged[-1].hash
    rewrite(raw, forged)
    assert store.verify_audit().ok
    check = store.verify_audit(anchor=anchor)
    assert (check.ok, check.first_bad_seq) == (False, 6)
    assert "anchor" in (check.reason or "")
    assert store.verify_audit(anchor=(2, six[1].hash)).ok  # before the rewrite: intact


def test_verification_pages_through_long_logs(
    store: ControlStore, raw: RawSQL, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(store_module, "_PAGE", 4)  # 11 records: three pages and a bit
    for i in range(11):
        store.append_audit("a", "x", "t", {"i": i})
    assert store.verify_audit().records == 11
    raw("UPDATE control_audit SET target = ? WHERE seq = 10", ("u",))
    assert store.verify_audit().first_bad_seq == 10
    raw("DELETE FROM control_audit WHERE seq = 5")
    assert store.verify_audit().first_bad_seq == 5


# -- processes -------------------------------------------------------------------------------

SERVER = """
import pathlib, sys, time
from assay.control import open_control_store
store = open_control_store(sys.argv[1])
stop = pathlib.Path(sys.argv[2])
n = 0
print("ready", flush=True)
while not stop.exists() or n < 50:
    store.append_audit("server", "ingest.batch", "fraud", {"n": n}, tenant="acme")
    n += 1
    time.sleep(0.001)
print(n, flush=True)
"""

CLIENT = """
import sys
from assay.control import open_control_store
with open_control_store(sys.argv[1]) as store:
    for i in range(int(sys.argv[2])):
        info, token = store.create_key("acme", "ingest", actor="worker", name=f"w{i}")
        print(token, flush=True)
"""


def _cli_create(location: str) -> str:
    where = (
        ["--store", location] if location.startswith("postgresql://") else ["--data-dir", location]
    )
    proc = subprocess.run(
        [str(ASSAY), "keys", "create", "--tenant", "acme", "--role", "read", *where],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[-1]


def test_processes_writing_while_a_server_holds_the_store_keep_one_chain(
    location: str, tmp_path: Path
):
    with open_control_store(location):  # create the schema before the race
        pass
    stop = tmp_path / "stop"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, location, str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, location, "25"], stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        cli_tokens: list[str] = []
        lock = threading.Lock()

        def cli_loop() -> None:
            for _ in range(2):
                token = _cli_create(location)
                with lock:
                    cli_tokens.append(token)

        threads = [threading.Thread(target=cli_loop) for _ in range(2)]
        for t in threads:
            t.start()
        worker_tokens = []
        for w in workers:
            out, _ = w.communicate(timeout=180)
            assert w.returncode == 0
            worker_tokens += out.split()
        for t in threads:
            t.join(timeout=180)
    finally:
        stop.touch()
        out, _ = server.communicate(timeout=120)
    assert server.returncode == 0
    batches = int(out.split()[-1])

    tokens = worker_tokens + cli_tokens
    assert len(tokens) == 50 + 4 and len(set(tokens)) == 54
    with open_control_store(location) as store:
        check = store.verify_audit()
        assert check.ok, check
        records = store.audit_records()
        assert check.records == len(records) == batches + 54 + 1  # + the tenant
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        actions = [r.action for r in records]
        assert actions.count("key.create") == 54 and actions.count("tenant.create") == 1
        assert actions.count("ingest.batch") == batches
        for token in tokens:
            key = store.authenticate(token)
            assert key is not None and key.tenant == "acme"
        # the writers really interleaved: keys were made between the server's batches
        batch_seqs = [r.seq for r in records if r.action == "ingest.batch"]
        key_seqs = [r.seq for r in records if r.action == "key.create"]
        assert any(batch_seqs[0] < s < batch_seqs[-1] for s in key_seqs)
