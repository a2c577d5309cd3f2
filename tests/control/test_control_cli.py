"""``assay keys`` and ``assay audit`` end to end, on SQLite (--data-dir) and PostgreSQL (--store).

Most runs use typer's CliRunner (in process, stdout and stderr apart); a few run the
installed ``assay`` script the way a deployment script would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assay.cli.main import app
from assay.control import SCHEMA_VERSION, open_control_store
from assay.control.keys import parse_token

from .conftest import RawSQL, is_postgres

ASSAY = Path(sys.executable).with_name("assay")


def invoke(args: list[Any], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def where(location: str) -> list[str]:
    """The flag that points a command at ``location``."""
    return ["--store", location] if is_postgres(location) else ["--data-dir", location]


def assert_one_error_line(result: Any, must_name: str) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and must_name in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def create(location: str, *extra: Any, tenant: str = "acme", role: str = "ingest") -> str:
    result = invoke(
        ["keys", "create", "--tenant", tenant, "--role", role, *extra, *where(location)]
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()[-1]


# -- keys ------------------------------------------------------------------------------------


def test_keys_create_prints_the_key_last_and_it_authenticates(location: str):
    result = invoke(
        ["keys", "create", "--tenant", "acme", "--role", "ingest", "--name", "ci", *where(location)]
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 2, "an explanation comes before the key"
    token = lines[-1]
    assert parse_token(token) is not None
    assert "shown only" in result.stdout
    with open_control_store(location) as store:
        key = store.authenticate(token)
        assert key is not None and (key.tenant, key.role, key.name) == ("acme", "ingest", "ci")
        record = store.audit_records()[-1]
        assert record.action == "key.create" and record.actor.startswith("cli:")


def test_installed_script_key_is_the_last_line(location: str):
    proc = subprocess.run(
        [str(ASSAY), "keys", "create", "--tenant", "acme", "--role", "read", *where(location)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    token = proc.stdout.rstrip("\n").splitlines()[-1]  # what `tail -n1` gives
    with open_control_store(location) as store:
        assert store.authenticate(token) is not None


def test_keys_revoke_stops_the_key(location: str):
    token = create(location)
    key_id = token.split("_")[1]
    result = invoke(["keys", "revoke", key_id, *where(location)])
    assert result.exit_code == 0, result.stderr
    assert key_id in result.stdout
    with open_control_store(location) as store:
        assert store.authenticate(token) is None
    listed = invoke(["keys", "list", *where(location)])
    assert "revoked" in listed.stdout


def test_keys_revoke_unknown_key_is_one_error_line(location: str):
    result = invoke(["keys", "revoke", "00000000deadbeef", *where(location)])
    assert_one_error_line(result, "00000000deadbeef")


def test_keys_list_never_shows_secrets(location: str):
    tokens = [create(location), create(location, tenant="beta", role="admin")]
    plain = invoke(["keys", "list", *where(location)])
    as_json = invoke(["keys", "list", "--json", *where(location)])
    only_beta = invoke(["keys", "list", "--tenant", "beta", "--json", *where(location)])
    for result in (plain, as_json, only_beta):
        assert result.exit_code == 0, result.stderr
        for token in tokens:
            assert token.split("_", 2)[2] not in result.stdout
    for token in tokens:
        assert token.split("_")[1] in plain.stdout
    rows = [json.loads(line) for line in only_beta.stdout.splitlines()]
    assert [(r["tenant"], r["role"], r["revoked_at"]) for r in rows] == [("beta", "admin", None)]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--tenant", "Acme", "--role", "read"], "tenant"),
        (["--tenant", "acme", "--role", "owner"], "role"),
        (["--tenant", "acme", "--role", "read", "--name", "a\tb"], "name"),
    ],
)
def test_keys_create_errors_are_one_line(location: str, args: list[str], field: str):
    result = invoke(["keys", "create", *args, *where(location)])
    line = assert_one_error_line(result, f"[field: {field}]")
    assert result.stdout == "", line


def test_store_must_be_a_postgres_url(tmp_path: Path):
    result = invoke(["keys", "list", "--store", "mysql://u:secretpw@db/x"])
    line = assert_one_error_line(result, "[field: store]")
    assert "secretpw" not in line


def test_newer_schema_is_one_error_line(location: str, raw: RawSQL):
    create(location)
    raw("UPDATE control_schema SET version = ? WHERE id = 1", (SCHEMA_VERSION + 1,))
    result = invoke(["keys", "list", *where(location)])
    assert_one_error_line(result, "schema version")


# -- data directory resolution ---------------------------------------------------------------


def test_data_dir_default_env_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    env_dir, flag_dir = tmp_path / "from-env", tmp_path / "from-flag"
    monkeypatch.delenv("ASSAY_DATA_DIR", raising=False)
    args = ["keys", "create", "--tenant", "acme", "--role", "read"]
    assert invoke(args).exit_code == 0
    assert (tmp_path / "assay-data" / "control.sqlite").exists()
    assert invoke(args, env={"ASSAY_DATA_DIR": str(env_dir)}).exit_code == 0
    assert (env_dir / "control.sqlite").exists()
    result = invoke([*args, "--data-dir", flag_dir], env={"ASSAY_DATA_DIR": str(env_dir)})
    assert result.exit_code == 0
    for directory, keys in ((tmp_path / "assay-data", 1), (env_dir, 1), (flag_dir, 1)):
        with open_control_store(directory) as store:
            assert len(store.list_keys()) == keys, directory


# -- audit ----------------------------------------------------------------------------------


def test_audit_verify_exit_codes(location: str, raw: RawSQL):
    for _ in range(3):
        create(location)
    ok = invoke(["audit", "verify", *where(location)])
    assert (ok.exit_code, ok.stdout.strip()) == (0, "ok: 4 records")
    raw("UPDATE control_audit SET actor = ? WHERE seq = 3", ("mallory",))
    broken = invoke(["audit", "verify", *where(location)])
    assert broken.exit_code == 1
    assert broken.stdout.startswith("audit log broken at record 3: ")


def test_audit_verify_with_anchor_catches_truncation(location: str, raw: RawSQL):
    create(location)
    create(location)
    head = invoke(["audit", "head", *where(location)])
    assert head.exit_code == 0 and head.stdout.startswith("3:")
    anchor = head.stdout.strip()
    assert invoke(["audit", "verify", "--anchor", anchor, *where(location)]).exit_code == 0
    raw("DELETE FROM control_audit WHERE seq = 3")
    assert invoke(["audit", "verify", *where(location)]).exit_code == 0  # the known limit
    result = invoke(["audit", "verify", "--anchor", anchor, *where(location)])
    assert result.exit_code == 1 and "record 3" in result.stdout
    bad = invoke(["audit", "verify", "--anchor", "3:nothex", *where(location)])
    assert_one_error_line(bad, "[field: anchor]")


def test_audit_show(location: str):
    create(location, tenant="acme")
    create(location, tenant="beta")
    everything = invoke(["audit", "show", *where(location)])
    assert everything.exit_code == 0, everything.stderr
    lines = everything.stdout.splitlines()
    assert lines[0].split()[:3] == ["SEQ", "TIME", "TENANT"] and len(lines) == 5
    beta = invoke(["audit", "show", "--tenant", "beta", "--json", *where(location)])
    records = [json.loads(line) for line in beta.stdout.splitlines()]
    assert [(r["seq"], r["action"]) for r in records] == [(3, "tenant.create"), (4, "key.create")]
    latest = invoke(["audit", "show", "--limit", "1", "--json", *where(location)])
    assert [json.loads(line)["seq"] for line in latest.stdout.splitlines()] == [4]
