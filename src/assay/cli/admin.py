"""``assay keys ...`` and ``assay audit ...``: administer the control store.

These commands open the control store directly (``<data dir>/control.sqlite``, or the
PostgreSQL database given with ``--store``), so they work while ``assay serve`` runs.

Exit codes: 0 success; 1 ``audit verify`` found the log broken; 2 usage or input error
(one line on stderr).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from assay.control import ControlStore

keys_app = typer.Typer(name="keys", help="Create, revoke and list API keys.", no_args_is_help=True)
audit_app = typer.Typer(
    name="audit", help="Show and verify the hash-chained audit log.", no_args_is_help=True
)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="ASSAY_DATA_DIR",
        help="Data directory holding control.sqlite.",
        show_default=True,
    ),
]
StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="postgresql:// URL of the control store (instead of the data directory).",
    ),
]
DEFAULT_DATA_DIR = Path("assay-data")
EXIT_BROKEN = 1


def cli_actor() -> str:
    """Who runs the command, for the audit log: ``cli:<os user>``.

    >>> cli_actor().startswith("cli:")
    True
    """
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "unknown"
    return f"cli:{user}"


@contextmanager
def _control(data_dir: Path, store: str | None) -> Iterator[ControlStore]:
    """Open the control store inside ``user_errors()``; close it afterwards."""
    from assay.cli.main import user_errors  # here: main imports this module
    from assay.control import open_control_store
    from assay.errors import ConfigError

    with user_errors():
        if store is not None and not store.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "--store must be a postgresql:// URL", field="store", hint="or use --data-dir"
            )
        with open_control_store(store if store is not None else data_dir) as control:
            yield control


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to (created if new).")],
    role: Annotated[str, typer.Option(help="admin, ingest or read.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreUrl = None,
) -> None:
    """Create an API key and print it as the last line (it is shown only once)."""
    with _control(data_dir, store) as control:
        info, token = control.create_key(tenant, role, actor=cli_actor(), name=name)
    typer.echo(f"Created {info.role} key {info.key_id} for tenant {info.tenant!r}.")
    typer.echo("Store it now: the key is shown only this once and cannot be recovered.")
    typer.echo(token)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Id of the key (the part after 'assay_').")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreUrl = None,
) -> None:
    """Revoke an API key; it stops working at once."""
    with _control(data_dir, store) as control:
        info = control.revoke_key(key_id, actor=cli_actor())
    typer.echo(f"revoked: {info.key_id} (tenant {info.tenant!r}, role {info.role})")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreUrl = None,
) -> None:
    """List API keys (ids, tenants, roles, status — never secrets)."""
    with _control(data_dir, store) as control:
        keys = control.list_keys(tenant)
    if json_out:
        for key in keys:
            typer.echo(json.dumps(key.to_dict()))
        return
    if not keys:
        typer.echo("no keys")
        return
    rows = [("KEY_ID", "TENANT", "ROLE", "STATUS", "CREATED", "NAME")]
    for key in keys:
        status = "active" if key.active else f"revoked {key.revoked_at}"
        rows.append((key.key_id, key.tenant, key.role, status, key.created_at, key.name or ""))
    typer.echo(_table(rows))


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH from an earlier 'assay audit head': also detects truncation."),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreUrl = None,
) -> None:
    """Check the audit chain: exit 0 if intact, 1 naming the first bad record."""
    from assay.control import parse_anchor

    with _control(data_dir, store) as control:
        parsed = None if anchor is None else parse_anchor(anchor)
        result = control.verify_audit(parsed)
    typer.echo(str(result))
    if not result.ok:
        raise typer.Exit(EXIT_BROKEN)


@audit_app.command("head")
def audit_head(data_dir: DataDir = DEFAULT_DATA_DIR, store: StoreUrl = None) -> None:
    """Print the last record as SEQ:HASH — keep it elsewhere, pass it to verify --anchor."""
    with _control(data_dir, store) as control:
        seq, digest = control.audit_head()
    typer.echo(f"{seq}:{digest}")


@audit_app.command("show")
def audit_show(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's records.")] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="Only the latest N records.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreUrl = None,
) -> None:
    """Show audit records, oldest first."""
    with _control(data_dir, store) as control:
        records = control.audit_records(tenant=tenant, limit=limit, newest_first=True)
    records.reverse()
    if json_out:
        for rec in records:
            typer.echo(json.dumps(rec.to_dict(), ensure_ascii=False))
        return
    if not records:
        typer.echo("no audit records")
        return
    rows = [("SEQ", "TIME", "TENANT", "ACTOR", "ACTION", "TARGET", "DETAILS")]
    for rec in records:
        details = json.dumps(rec.details, sort_keys=True, ensure_ascii=False)
        rows.append(
            (
                str(rec.seq),
                rec.timestamp,
                rec.tenant or "-",
                rec.actor,
                rec.action,
                rec.target,
                details,
            )
        )
    typer.echo(_table(rows))


def _table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns separated by two spaces (the last column is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
