"""``sealmail backup create | show | drill`` and ``sealmail restore``: the contingency plan's
data backup, restore and its tested drill (45 CFR 164.308(a)(7)).

The database and the blob store are copied; the master key ring is not (back it up apart,
as the README says).  Both engines, either direction.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.cli_base import _settings, err, friendly, out
from sealmail.evidence import backup, drill, restore
from sealmail.schema import metadata
from sealmail.store import db

backup_app = typer.Typer(no_args_is_help=True, help="Backups of the database and blob store; the drill.")


def _engine_and_blobs() -> tuple[Engine, Path]:
    s = _settings()
    return db.create_engine(s.resolved_database_url, pool_size=2), s.blob_dir or s.home / "blobs"


@backup_app.command("create")
@friendly
def backup_create(
    output: Annotated[Path, typer.Option("--out", help="The backup file to write (must not exist).")],
) -> None:
    """Write a consistent backup (every table in one snapshot, plus the encrypted blobs)."""
    engine, blobs = _engine_and_blobs()
    try:
        made = backup.create(engine, metadata.sorted_tables, output, blobs)
        with engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.BACKUP_CREATED,
                actor="cli",
                details={
                    "sha256": made.sha256,
                    "recovery_point": made.recovery_point,
                    "rows": sum(made.tables.values()),
                },
            )
    finally:
        engine.dispose()
    out.print(f"backup written to {output}: {sum(made.tables.values())} rows, {made.blobs} blobs")
    out.print(f"recovery point {made.recovery_point}; sha256 {made.sha256}", soft_wrap=True)
    out.print("the master key ring is not in the backup: keep a copy of it apart")


@backup_app.command("show")
@friendly
def backup_show(file: Path) -> None:
    """What a backup holds (its manifest), without restoring it."""
    made = backup.summary(file)
    out.print_json(data={**asdict(made), "path": str(made.path)})


@backup_app.command("drill")
@friendly
def backup_drill(
    scratch_url: Annotated[
        str | None, typer.Option(help="An EMPTY scratch database (default: a temporary SQLite file).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Also write the report (JSON) here.")] = None,
) -> None:
    """Back up, restore into a scratch database, re-verify the audit chain; report RPO and RTO."""
    engine, blobs = _engine_and_blobs()
    try:
        report = drill.run(engine, metadata.sorted_tables, blobs, scratch_url)
    finally:
        engine.dispose()
    text = json.dumps(asdict(report), indent=2)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    out.print(
        f"recovery point {report.recovery_point} ({report.recovery_point_age_seconds} s behind); "
        f"recovery time {report.recovery_time_seconds} s; {report.rows} rows, "
        f"{report.audit_entries_verified} audit entries verified",
        soft_wrap=True,
    )
    if not report.ok:
        err.print(f"[red]drill failed:[/red] {report.problem or 'row counts differ'}")
        raise typer.Exit(1)
    out.print("drill passed")


@friendly
def restore_cmd(
    file: Annotated[Path, typer.Argument(help="A file written by `sealmail backup create`.")],
) -> None:
    """Restore a backup into the configured (empty) database and blob directory; the audit chain
    is re-verified and must end at the head the backup recorded (exit 1 otherwise)."""
    engine, blobs = _engine_and_blobs()
    try:
        result = restore.restore(engine, metadata.sorted_tables, file, blobs)
        if result.ok:
            with engine.begin() as conn:
                audit.append(
                    conn,
                    action=AuditAction.BACKUP_RESTORED,
                    actor="cli",
                    details={"sha256": backup.file_sha256(file), "rows": result.rows},
                )
    finally:
        engine.dispose()
    out.print(f"restored {result.rows} rows and {result.blobs} blobs")
    if not result.ok:
        err.print(f"[red]audit chain not verified after restore:[/red] {result.problem}")
        raise typer.Exit(1)
    out.print(f"audit chain verified after restore: {result.audit_entries} entries, head matches the backup")
