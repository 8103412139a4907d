"""``sealmail evidence …``, ``sealmail audit anchor`` and ``sealmail verify FILE``.

``verify`` needs nothing but the file: no settings, no database, no key ring — an auditor
runs it on a laptop.  It exits 1 and names each field or signature that failed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from sealmail.cli_support import SessionOpener, console, err
from sealmail.evidence import controls, signed, supply, timestamps
from sealmail.evidence.catalogue import REPORTS
from sealmail.evidence.pack import Packer, PackInputs, parse_period
from sealmail.evidence.pack_verify import is_zip, verify_pack
from sealmail.evidence.plain import WARNING
from sealmail.evidence.reports import Period, ReportFilter
from sealmail.evidence.retention import RetentionPolicy
from sealmail.evidence.service import Evidence
from sealmail.web.models import as_json

evidence_app = typer.Typer(no_args_is_help=True, help="Signed proofs of delivery and reports for auditors.")
out = console()

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
    kind: Annotated[
        str, typer.Argument(help="delivery | secured | access | logins | dlp | quarantine | retention")
    ] = "delivery",
    since: Annotated[datetime | None, typer.Option(help="Start (inclusive), e.g. 2026-10-01.")] = None,
    until: Annotated[datetime | None, typer.Option(help="End (exclusive), e.g. 2027-01-01.")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="A PDF (needs --out) instead of CSV.")] = False,
    sender: Annotated[str | None, typer.Option(help="Only mail From this address.")] = None,
    recipient_domain: Annotated[str | None, typer.Option(help="Only recipients at this domain.")] = None,
    stream: Annotated[
        str | None, typer.Option(help="Only this stream (phi, transactional, broadcast).")
    ] = None,
    campaign: Annotated[str | None, typer.Option(help="Only messages carrying this tag.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """A report as CSV or PDF, for a period.  Times without an offset are UTC."""
    if (since is None) != (until is None):
        err.print("[red]error:[/red] give both --since and --until")
        raise typer.Exit(2)
    period = Period(_utc(since), _utc(until)) if since and until else None
    _report(kind, period, ReportFilter(sender, recipient_domain, stream, campaign), output, pdf, tenant)


def _report(
    kind: str, period: Period | None, f: ReportFilter, output: Path | None, pdf: bool, tenant: str | None
) -> None:
    if pdf and output is None:
        err.print("[red]error:[/red] --pdf needs --out FILE")
        raise typer.Exit(2)
    with session(tenant) as (evidence, tenant_id):
        data = evidence.report(kind, tenant_id, period, "cli", "pdf" if pdf else "csv", f)
    if output is None:
        _write(data.decode(), None)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as fh:
        fh.write(data)
    err.print(f"written to {output}")


@evidence_app.command("pack")
def pack_cmd(
    period: Annotated[str, typer.Option(help="2026-Q4, 2026-11 or 2026.")],
    output: Annotated[Path, typer.Option("--out", help="The zip to write.")],
    tenant: TenantOpt = None,
    test_results: Annotated[
        Path | None,
        typer.Option(help="The results `make test` wrote (default: <home>/test-results/hipaa-results.json)."),
    ] = None,
    lock: Annotated[
        Path | None, typer.Option(help="The lock file whose pins the dependency audit compares.")
    ] = None,
) -> None:
    """Build the signed evidence pack (reports, audit export and verification, anchors,
    policies, registers, SBOM, dependency audit, test results, manifest); check it with
    `sealmail verify PACK.zip --key …`.  Without --test-results the pack says "not run"."""
    inputs = _pack_inputs(test_results, lock)
    with session(tenant) as (evidence, tenant_id):
        span = parse_period(period)
        with Progress(transient=True, console=err) as progress:
            task = progress.add_task("building the evidence pack", total=len(REPORTS) + 2)

            def step(_name: str) -> None:
                progress.advance(task)

            data = Packer(evidence).build(tenant_id, span, "cli", step, inputs)
        fingerprint = signed.key_fingerprint(evidence.keys.tenant(tenant_id).public_key())
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as fh:
        fh.write(data)
    out.print(
        f"written to {output}; verify with: sealmail verify {output} --key {fingerprint}", soft_wrap=True
    )


def _pack_inputs(test_results: Path | None, lock: Path | None) -> PackInputs:
    # Without --lock the pack reads the configured lock file (evidence_lock_file), as the
    # API's and the console's packs do.
    try:
        results = test_results.read_bytes() if test_results is not None else None
        if results is not None:
            supply.load_results(results)
        lock_text = lock.read_text(encoding="utf-8") if lock is not None else None
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    return PackInputs(results, lock_text)


@evidence_app.command("controls")
def controls_cmd(
    tests: Annotated[
        Path | None, typer.Option(help="A test tree to read the hipaa markers from (default: as shipped).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write the table here.")] = None,
) -> None:
    """The HIPAA section → tests table; exits 1 when a claimed section has no test."""
    if tests is None:
        _write(controls.packaged(), output)
        return
    if not tests.is_dir():
        err.print(f"{tests}: not a directory")
        raise typer.Exit(2)
    try:
        table = controls.scan(tests)
    except (controls.MarkerError, SyntaxError) as exc:
        err.print(f"bad hipaa marker: {exc}")
        raise typer.Exit(2) from exc
    _write(controls.render(table), output)
    missing = controls.unproven(table)
    if missing:
        err.print(f"no test proves: {', '.join(missing)}")
        raise typer.Exit(1)


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
    file: Annotated[
        Path, typer.Argument(help="A proof of delivery, an audit anchor (JSON) or an evidence pack (zip).")
    ],
    key: Annotated[
        str | None, typer.Option(help="The signer's key fingerprint you trust (`sealmail evidence key`).")
    ] = None,
    tsa_ca: Annotated[
        Path | None,
        typer.Option(help="The time-stamp authority's CA (PEM): check each RFC 3161 token with openssl."),
    ] = None,
) -> None:
    """Check a signed evidence document offline; exit 1 naming each altered field or bad signature."""
    if _is_pack(file):
        _verify_pack(file, key)
        return
    try:
        docs = [json.loads(line) for line in _documents(file.read_text(encoding="utf-8"))]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        err.print(f"[red]not verified:[/red] {file} is not a readable JSON document ({exc})", soft_wrap=True)
        raise typer.Exit(1) from exc
    failed = False
    for doc in docs:
        verdict = signed.verify(doc, key)
        if verdict.ok and isinstance(doc, dict):
            verdict.problems.extend(timestamps.check(doc, tsa_ca))
        if verdict.ok:
            stamped = " and time-stamped" if isinstance(doc, dict) and "timestamp" in doc else ""
            fingerprint = verdict.key_fingerprint
            out.print(f"verified: {verdict.format}, signed by key {fingerprint}{stamped}", soft_wrap=True)
            continue
        failed = True
        for problem in verdict.problems:
            err.print(f"[red]tampered:[/red] {problem}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)
    if key is None:
        out.print("note: pass --key FINGERPRINT to check who signed it, not only that it is intact")


def _is_pack(file: Path) -> bool:
    try:
        with file.open("rb") as fh:
            return is_zip(fh.read(4))
    except OSError:
        return False


def _verify_pack(file: Path, key: str | None) -> None:
    check = verify_pack(file.read_bytes(), key)
    for problem in check.problems:
        err.print(f"[red]tampered:[/red] {problem}", soft_wrap=True)
    if not check.ok:
        raise typer.Exit(1)
    out.print(
        f"verified: evidence pack, {check.files} files intact, signed by key {check.key_fingerprint}",
        soft_wrap=True,
    )
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


# -- retention and legal holds ----------------------------------------------------------------------
retention_app = typer.Typer(
    no_args_is_help=True, help="Retention periods, purge by crypto-shredding, report."
)
hold_app = typer.Typer(no_args_is_help=True, help="Legal holds: nothing they cover is purged.")
evidence_app.add_typer(retention_app, name="retention")
evidence_app.add_typer(hold_app, name="hold")
Days = Annotated[int | None, typer.Option(min=1, help="Days (unchanged when omitted).")]


@retention_app.command("show")
def retention_show(tenant: TenantOpt = None) -> None:
    """The tenant's retention periods, in days."""
    with session(tenant) as (evidence, tenant_id):
        out.print_json(data=asdict(evidence.retention.policy(tenant_id)))


@retention_app.command("set")
def retention_set(
    content_days: Days = None,
    metadata_days: Days = None,
    audit_days: Days = None,
    tenant: TenantOpt = None,
) -> None:
    """Set retention periods; metadata and audit below six years are refused (164.316(b)(2))."""
    with session(tenant) as (evidence, tenant_id):
        now = evidence.retention.policy(tenant_id)
        wanted = RetentionPolicy(
            content_days or now.content_days, metadata_days or now.metadata_days, audit_days or now.audit_days
        )
        out.print_json(data=asdict(evidence.retention.set_policy(tenant_id, wanted, "cli")))


@retention_app.command("purge")
def retention_purge(
    as_of: Annotated[
        datetime | None, typer.Option(help="Judge ages as of this time (default now; for drills).")
    ] = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="Every tenant (what the worker runs).")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Crypto-shred content and pseudonymise metadata past their periods, except under legal hold."""
    when = _utc(as_of) if as_of else None
    with session("*" if all_tenants else tenant) as (evidence, tenant_id):
        ids = evidence.retention.tenants() if all_tenants else [tenant_id]
        with Progress(transient=True, console=err) as progress:
            task = progress.add_task("purging", total=len(ids))
            for tid in ids:
                r = evidence.retention.purge(tid, "cli", when)
                out.print(f"{tid}: shredded {r.shredded}, pseudonymised {r.pseudonymised}, held {r.held}")
                progress.advance(task)


@retention_app.command("report")
def retention_report_cmd(
    output: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="A PDF (needs --out) instead of CSV.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Policy, legal holds and what retention destroyed or kept (CSV or PDF)."""
    _report("retention", None, ReportFilter(), output, pdf, tenant)


@hold_app.command("place")
def hold_place(
    reason: Annotated[str, typer.Option(help="Why (matter, request number).")],
    message: Annotated[str | None, typer.Option(help="Hold this message (msg_…).")] = None,
    recipient: Annotated[str | None, typer.Option(help="Hold every message to this address.")] = None,
    whole_tenant: Annotated[
        bool, typer.Option("--tenant-wide", help="Hold everything of the tenant.")
    ] = False,
    tenant: TenantOpt = None,
) -> None:
    """Place a legal hold on a message, a recipient or the whole tenant."""
    chosen = [s for s, on in (("message", message), ("recipient", recipient), ("tenant", whole_tenant)) if on]
    if len(chosen) != 1:
        err.print("[red]error:[/red] give exactly one of --message, --recipient, --tenant-wide")
        raise typer.Exit(2)
    with session(tenant) as (evidence, tenant_id):
        hold = evidence.retention.place_hold(tenant_id, chosen[0], message or recipient or "", reason, "cli")
    out.print_json(data=as_json(hold))


@hold_app.command("release")
def hold_release(
    hold_id: Annotated[str, typer.Argument(help="The hold (lgh_…).")], tenant: TenantOpt = None
) -> None:
    """Release a legal hold; what it covered is purged by the next run if past its period."""
    with session(tenant) as (evidence, tenant_id):
        out.print_json(data=as_json(evidence.retention.release_hold(tenant_id, hold_id, "cli")))


@hold_app.command("list")
def hold_list(
    active: Annotated[bool, typer.Option(help="Only holds not released.")] = False, tenant: TenantOpt = None
) -> None:
    """Every legal hold of the tenant."""
    with session(tenant) as (evidence, tenant_id):
        out.print_json(data=as_json(evidence.retention.holds(tenant_id, active_only=active)))


# -- the unencrypted-by-request register (164.524(c)(2)) ------------------------------------------
plain_app = typer.Typer(no_args_is_help=True, help="Patients' requests for unencrypted mail (164.524).")
evidence_app.add_typer(plain_app, name="plain")


@plain_app.command("warning")
def plain_warning() -> None:
    """The warning to give the patient before they confirm (read it as is)."""
    out.print(WARNING, soft_wrap=True)


@plain_app.command("record")
def plain_record(
    address: Annotated[str, typer.Argument(help="The patient's address, as verified by staff.")],
    evidence_text: Annotated[
        str, typer.Option("--evidence", help="Where the proof is, e.g. 'signed form scanned to chart'.")
    ],
    tenant: TenantOpt = None,
) -> None:
    """Record a patient's request, the warning given and their confirmation."""
    with session(tenant) as (evidence, tenant_id):
        out.print_json(data=as_json(evidence.plain.record(tenant_id, address, evidence_text, "cli")))


@plain_app.command("revoke")
def plain_revoke(
    request_id: Annotated[str, typer.Argument(help="The request (pln_…).")],
    reason: Annotated[str, typer.Option(help="Why (e.g. 'patient called 2026-12-04').")] = "",
    tenant: TenantOpt = None,
) -> None:
    """Revoke a request: SecureLine stops sending that address plain mail at once."""
    with session(tenant) as (evidence, tenant_id):
        out.print_json(data=as_json(evidence.plain.revoke(tenant_id, request_id, "cli", "staff", reason)))


@plain_app.command("list")
def plain_list(
    address: Annotated[str | None, typer.Option(help="Only this address.")] = None, tenant: TenantOpt = None
) -> None:
    """Every request with its steps."""
    with session(tenant) as (evidence, tenant_id):
        out.print_json(data=as_json(evidence.plain.requests(tenant_id, address)))


# -- confidential-communication preferences (164.522(b)) ------------------------------------------
prefs_app = typer.Typer(
    no_args_is_help=True, help="Patients' confidential-communication preferences (164.522(b))."
)
evidence_app.add_typer(prefs_app, name="prefs")


@prefs_app.command("record")
def prefs_record(
    address: Annotated[str, typer.Argument(help="The patient's address, as verified by staff.")],
    kind: Annotated[str, typer.Option(help="portal_only | redirect | no_sms")],
    evidence_text: Annotated[
        str, typer.Option("--evidence", help="Where the proof is, e.g. 'call note in chart 2026-12-04'.")
    ],
    alternative: Annotated[
        str | None, typer.Option(help="For a redirect: the address to use instead.")
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Record a preference: SecureLine obeys it from the next delivery on."""
    with session(tenant) as (evidence, tenant_id):
        made = evidence.preferences.record(
            tenant_id, address, kind, "cli", "staff", evidence_text, alternative
        )
        out.print_json(data=asdict(made))


@prefs_app.command("revoke")
def prefs_revoke(
    preference_id: Annotated[str, typer.Argument(help="The preference (cmp_…).")],
    reason: Annotated[str, typer.Option(help="Why (e.g. 'patient called 2026-12-04').")] = "",
    tenant: TenantOpt = None,
) -> None:
    """Revoke a preference: SecureLine stops applying it at once."""
    with session(tenant) as (evidence, tenant_id):
        out.print_json(
            data=asdict(evidence.preferences.revoke(tenant_id, preference_id, "cli", "staff", reason))
        )


@prefs_app.command("list")
def prefs_list(
    address: Annotated[str | None, typer.Option(help="Only this address.")] = None,
    active: Annotated[bool, typer.Option(help="Only the standing ones.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Every preference with its steps."""
    with session(tenant) as (evidence, tenant_id):
        out.print_json(data=[asdict(p) for p in evidence.preferences.preferences(tenant_id, address, active)])
