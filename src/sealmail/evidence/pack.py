"""The evidence pack: one signed zip an auditor takes away for a tenant and a period.

    reports/<name>.csv and .pdf     every report of the catalogue for the period
    audit/entries.jsonl             the tenant's audit entries in the period (hashes included)
    audit/verification.json         the whole chain walked and every anchor checked, now
    anchors/anchors.jsonl           every signed anchor (``sealmail verify`` checks each line)
    policies/retention.json         the retention periods in force and the six-year floor
    policies/tenant-settings.json   SecureLine, DLP and TLS settings as stored
    registers/decisions.json        the decisions register: each protective setting weakened, and why
    registers/legal-holds.json      every legal hold, active or released
    registers/plain-requests.json   every unencrypted-by-request request with its steps
    registers/comms-preferences.json every confidential-communication preference (164.522(b))
    registers/activity-reviews.json monthly activity-review sign-offs (164.308(a)(1)(ii)(D))
    registers/backup-drills.json    restore drills of the period: recovery point and time
    controls/hipaa-tests.md         HIPAA section → the tests that prove it → their results
    controls/test-results.json      the results file the test run wrote (or an explicit "not run")
    controls/sbom.cdx.json          CycloneDX SBOM of the installed distributions
    controls/dependency-audit.json  lock-file pins vs installed; OSV advisories as last fetched
    README.txt                      what each file is and how to check the pack
    manifest.json                   SHA-256 of each file above, signed (tenant evidence key)

``sealmail verify pack.zip --key FINGERPRINT`` checks the signature and every file
(``pack_verify.py``).  Building a pack is audited; so is each report inside it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import InvalidRequest
from sealmail.evidence import controls, drill, signed, supply
from sealmail.evidence.catalogue import REPORTS
from sealmail.evidence.dependencies import AuditView
from sealmail.evidence.pack_verify import FORMAT, MANIFEST
from sealmail.evidence.reports import Period
from sealmail.evidence.retention import FLOOR_DAYS
from sealmail.evidence.service import Evidence
from sealmail.evidence.tables import audit_anchors
from sealmail.store import db
from sealmail.store.tables import audit_log, tenants
from sealmail.tenancy.decisions import Decisions
from sealmail.web.models import as_json

POLICY_KEYS = frozenset({"secureline", "dlp", "tls_policy", "key_discovery", "tracking", "working_hours"})
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")

README = """Sealmail evidence pack ({format})

Tenant {tenant_id}, period {since} to {until} (UTC, end exclusive), built {built}.

Check it offline:  sealmail verify THIS.zip --key {fingerprint}
That checks the Ed25519 signature on manifest.json and the SHA-256 of every file it lists;
any file altered, added or removed is named.  Each line of anchors/anchors.jsonl is a signed
anchor of the audit chain that `sealmail verify` also checks on its own.

reports/          delivery, secured, access, logins, dlp, quarantine, plain_register,
                  comms_preferences, retention
audit/            the tenant's audit entries in the period; the chain and anchors as verified
anchors/          signed chain heads (and RFC 3161 tokens where a TSA was configured)
policies/         retention periods (floor {floor} days) and the tenant's settings
registers/        the decisions register (each weakened setting, by whom, why); legal
                  holds; patients' requests for unencrypted mail (164.524); activity
                  reviews; backup restore drills (recovery point and time)
controls/         which tests prove which HIPAA section and their results; the SBOM
                  (CycloneDX) and the dependency audit (the OSV advisories as of the time
                  they were fetched, or "not performed" when never fetched)
"""


def parse_period(text: str) -> Period:
    """``2026-Q4``, ``2026-11`` or ``2026`` as a half-open UTC period."""
    text = text.strip()
    if m := _QUARTER.match(text):
        year, q = int(m.group(1)), int(m.group(2))
        start = datetime(year, 3 * q - 2, 1, tzinfo=UTC)
        end = datetime(year + 1, 1, 1, tzinfo=UTC) if q == 4 else datetime(year, 3 * q + 1, 1, tzinfo=UTC)
        return Period(start, end)
    if (m := _MONTH.match(text)) and 1 <= int(m.group(2)) <= 12:
        year, month = int(m.group(1)), int(m.group(2))
        end = (
            datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else datetime(year, month + 1, 1, tzinfo=UTC)
        )
        return Period(datetime(year, month, 1, tzinfo=UTC), end)
    if m := _YEAR.match(text):
        year = int(m.group(1))
        return Period(datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC))
    raise InvalidRequest(f"period {text!r}: use 2026-Q4, 2026-11 or 2026")


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _jsonl(values: list[Any]) -> bytes:
    return b"".join(json.dumps(v, sort_keys=True, default=str).encode() + b"\n" for v in values)


@dataclass(frozen=True, slots=True)
class PackInputs:
    """What the pack reads from outside the database: the test run's results file
    (``pytest --hipaa-results``) and the lock file; absent ones are said to be absent."""

    test_results: bytes | None = None
    lock_text: str | None = None


def controls_files(inputs: PackInputs, advisories: AuditView | None = None) -> dict[str, bytes]:
    results = supply.load_results(inputs.test_results) if inputs.test_results is not None else None
    raw = inputs.test_results or _json(
        {"format": supply.RESULTS_FORMAT, "run": False, "note": "no results file was given", "tests": {}}
    )
    return {
        "controls/hipaa-tests.md": supply.results_table(controls.packaged_table(), results).encode(),
        "controls/test-results.json": raw,
        "controls/sbom.cdx.json": supply.sbom_json(),
        "controls/dependency-audit.json": supply.dependency_audit_json(inputs.lock_text, advisories),
    }


class Packer:
    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence
        self.engine = evidence.engine

    def build(
        self,
        tenant_id: str,
        period: Period,
        actor: str,
        progress: Callable[[str], None] | None = None,
        inputs: PackInputs | None = None,
    ) -> bytes:
        step = progress or (lambda _name: None)
        files: dict[str, bytes] = {}
        for name in REPORTS:
            scope = period if REPORTS[name].needs_period else None
            files[f"reports/{name}.csv"] = self.evidence.report(name, tenant_id, scope, actor, "csv")
            files[f"reports/{name}.pdf"] = self.evidence.report(name, tenant_id, scope, actor, "pdf")
            step(f"report {name}")
        files["audit/entries.jsonl"] = self._audit_entries(tenant_id, period)
        checked = self.evidence.anchors.verify()
        files["audit/verification.json"] = _json(
            {
                "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "chain_ok": checked.chain.ok,
                "entries_checked": checked.chain.checked,
                "first_bad_seq": checked.chain.first_bad_seq,
                "chain_problem": checked.chain.problem,
                "anchors_checked": checked.anchors,
                "anchor_problems": checked.problems,
                "ok": checked.ok,
            }
        )
        step("audit chain verified")
        files["anchors/anchors.jsonl"] = self._anchors()
        files["policies/retention.json"] = _json(
            {**asdict(self.evidence.retention.policy(tenant_id)), "floor_days": FLOOR_DAYS}
        )
        files["policies/tenant-settings.json"] = _json(self._settings(tenant_id))
        # The configuration's decisions register: every protective setting weakened up to the
        # period's end, by whom and why (164.316(b)(1): the documented reason for each choice).
        decided = Decisions(self.engine).register(tenant_id, limit=None, until=period.until)
        files["registers/decisions.json"] = _json([asdict(d) for d in decided])
        files["registers/legal-holds.json"] = _json(as_json(self.evidence.retention.holds(tenant_id)))
        files["registers/plain-requests.json"] = _json(as_json(self.evidence.plain.requests(tenant_id)))
        files["registers/comms-preferences.json"] = _json(
            [asdict(p) for p in self.evidence.preferences.preferences(tenant_id)]
        )
        files["registers/activity-reviews.json"] = _json(
            as_json(self.evidence.activity_review.sign_offs(tenant_id, period.since, period.until))
        )
        files["registers/backup-drills.json"] = _json(drill.drills(self.engine, period.since, period.until))
        # The CLI may name its files; otherwise every pack (CLI, API, console) reads the same
        # defaults, so all three carry the same dependency section.
        given = inputs or PackInputs()
        deps = self.evidence.dependencies
        lock = given.lock_text if given.lock_text is not None else deps.lock_text()
        results = given.test_results if given.test_results is not None else self._default_results()
        files.update(controls_files(PackInputs(results, lock), deps.audit_view(lock)))
        key = self.evidence.keys.tenant(tenant_id)
        fingerprint = signed.key_fingerprint(key.public_key())
        built = datetime.now(UTC).isoformat(timespec="seconds")
        files["README.txt"] = README.format(
            format=FORMAT,
            tenant_id=tenant_id,
            since=period.since.isoformat(),
            until=period.until.isoformat(),
            built=built,
            fingerprint=fingerprint,
            floor=FLOOR_DAYS,
        ).encode()
        span = {"since": period.since.isoformat(), "until": period.until.isoformat()}
        body: dict[str, Any] = {
            "tenant_id": tenant_id,
            "period": span,
            "built_at": built,
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        }
        manifest = signed.sign(FORMAT, body, key)
        if self.evidence.tsa is not None:
            manifest = self.evidence.tsa.stamp(manifest)
        step("manifest signed")
        with self.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.EVIDENCE_PACK_BUILT,
                actor=actor,
                tenant_id=tenant_id,
                details={
                    **body["period"],
                    "files": len(files),
                    "manifest_sha256": signed.sha256_hex(signed.canonical(manifest)),
                },
            )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in sorted(files.items()):
                archive.writestr(name, data)
            archive.writestr(MANIFEST, _json(manifest))
        return out.getvalue()

    def _default_results(self) -> bytes | None:
        """The results file `make test` left in the home directory, when it is there."""
        path = self.evidence.results_file
        if path is None or not path.is_file():
            return None
        try:
            data = path.read_bytes()
            supply.load_results(data)
        except (OSError, ValueError):
            return None  # unreadable: the pack says "not run" rather than guess
        return data

    def _audit_entries(self, tenant_id: str, period: Period) -> bytes:
        query = (
            sa.select(audit_log)
            .where(
                audit_log.c.tenant_id == tenant_id,
                audit_log.c.at >= period.since,
                audit_log.c.at < period.until,
            )
            .order_by(audit_log.c.seq)
        )
        with db.reader(self.engine) as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["at"] = row["at"].astimezone(UTC).isoformat(timespec="microseconds")
        return _jsonl(rows)

    def _anchors(self) -> bytes:
        with db.reader(self.engine) as conn:
            docs = list(
                conn.execute(sa.select(audit_anchors.c.document).order_by(audit_anchors.c.seq)).scalars()
            )
        return _jsonl(docs)

    def _settings(self, tenant_id: str) -> dict[str, Any]:
        with db.reader(self.engine) as conn:
            settings = conn.execute(sa.select(tenants.c.settings).where(tenants.c.id == tenant_id)).scalar()
        # The policy-bearing keys only: what SecureLine, DLP and TLS decided from.
        return {k: v for k, v in dict(settings or {}).items() if k in POLICY_KEYS}
