"""``sealmail evidence …``, ``sealmail audit anchor`` and ``sealmail verify FILE``.

``verify`` needs nothing but the file: no settings, no database, no key ring — an auditor
runs it on a laptop.  It exits 1 and names each field or signature that failed.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sealmail.cli_support import SessionOpener, err
from sealmail.evidence import signed
from sealmail.evidence.reports import Period
from sealmail.evidence.service import Evidence

evidence_app = typer.Typer(no_args_is_help=True, help="Signed proofs of delivery and reports for auditors.")
out = Console(highlight=False)

TenantOpt = Annotated[str | None, typer.Option(help="Tenant name or id (needed when several exist).")]
session: SessionOpener[Evidence] = SessionOpener("evidence")


def _write(text: str, path: Path | None) -> None:
    if path is None:
        out.print(text, end="", markup=False, soft_wrap=True)
    else:
        # Created 0600 from the start: proofs and reports name patients' addresses.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        err.print(f"written to {path}")


@evidence_app.command("proof")
def proof_cmd(
    message_id: Annotated[str, typer.Argument(help="The message (msg_…).")],
    recipient: Annotated[
        list[str] | None, typer.Option(help="Recipient id (rcp_…); default: every delivered recipient.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Signed proof of delivery (one JSON document per recipient, one a line with several)."""
    with session(tenant) as (evidence, tenant_id):
        ids = recipient or evidence.proofs.delivered(tenant_id, message_id)
        docs = [evidence.proofs.issue(tenant_id, message_id, rid, "cli") for rid in ids]
    if len(docs) == 1:
        _write(json.dumps(docs[0], indent=2, sort_keys=True) + "\n", output)
    else:
        _write("".join(json.dumps(d, sort_keys=True) + "\n" for d in docs), output)


@evidence_app.command("report")
def report_cmd(
    since: Annotated[datetime, typer.Option(help="Start (inclusive), e.g. 2026-10-01.")],
    until: Annotated[datetime, typer.Option(help="End (exclusive), e.g. 2027-01-01.")],
    output: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="A PDF (needs --out) instead of CSV.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """The delivery report (CSV or PDF): outcomes and how each recipient was secured.  Times
    without an offset are UTC."""
    if pdf and output is None:
        err.print("[red]error:[/red] --pdf needs --out FILE")
        raise typer.Exit(2)
    period = Period(_utc(since), _utc(until))
    with session(tenant) as (evidence, tenant_id):
        if pdf:
            assert output is not None
            data = evidence.delivery_report_pdf(tenant_id, period, "cli")
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as fh:
                fh.write(data)
            err.print(f"written to {output}")
            return
        csv_text = evidence.delivery_report(tenant_id, period, "cli")
    _write(csv_text, output)


@evidence_app.command("key")
def key_cmd(tenant: TenantOpt = None) -> None:
    """The tenant's evidence key fingerprint, to pin with `sealmail verify --key`."""
    with session(tenant) as (evidence, tenant_id):
        out.print(signed.key_fingerprint(evidence.keys.tenant(tenant_id).public_key()))


def anchor_cmd(
    output: Annotated[Path | None, typer.Option("--out", help="Also write the signed anchor here.")] = None,
    mail_to: Annotated[
        str | None,
        typer.Option(help="Also mail it (JSON attached) to this address, e.g. the compliance officer."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant the mail is sent as (with --mail-to).")] = None,
) -> None:
    """Sign the audit chain's head with the installation key and store the anchor."""
    with session(tenant if mail_to else "*") as (evidence, tenant_id):
        doc = evidence.anchors.anchor("cli")
        fingerprint = signed.key_fingerprint(evidence.keys.installation().public_key())
        if mail_to is not None and evidence.mailer is not None:
            queued = evidence.mailer.send(tenant_id, mail_to, doc)
            out.print(f"mailed to {mail_to} as message {queued}", soft_wrap=True)
    out.print(
        f"anchored entry {doc['body']['seq']} ({doc['body']['head_hash']}); key {fingerprint}", soft_wrap=True
    )
    if output is not None:
        _write(json.dumps(doc, indent=2, sort_keys=True) + "\n", output)


def verify_cmd(
    file: Annotated[Path, typer.Argument(help="A proof of delivery or an audit anchor (JSON).")],
    key: Annotated[
        str | None, typer.Option(help="The signer's key fingerprint you trust (`sealmail evidence key`).")
    ] = None,
) -> None:
    """Check a signed evidence document offline; exit 1 naming each altered field or bad signature."""
    try:
        docs = [json.loads(line) for line in _documents(file.read_text(encoding="utf-8"))]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        err.print(f"[red]not verified:[/red] {file} is not a readable JSON document ({exc})", soft_wrap=True)
        raise typer.Exit(1) from exc
    failed = False
    for doc in docs:
        verdict = signed.verify(doc, key)
        if verdict.ok:
            out.print(f"verified: {verdict.format}, signed by key {verdict.key_fingerprint}", soft_wrap=True)
            continue
        failed = True
        for problem in verdict.problems:
            err.print(f"[red]tampered:[/red] {problem}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)
    if key is None:
        out.print("note: pass --key FINGERPRINT to check who signed it, not only that it is intact")


def _documents(text: str) -> list[str]:
    """One indented document, or several one a line."""
    stripped = text.strip()
    if stripped.startswith("{") and "\n{" not in stripped:
        return [stripped]
    return [line for line in stripped.splitlines() if line.strip()]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
