"""The daily job: build each (tenant, policy domain) report and deliver it to the domain's
``rua`` endpoints (RFC 8460 §3, §5).

https endpoints get a POST of the gzip'd JSON (``application/tlsrpt+gzip``, §5.4) through
the SSRF-safe client; mailto endpoints get a §5.3 message queued as the tenant's own mail,
so the worker DKIM-signs it with the tenant's domain key (§3: unsigned reports may be
discarded).  A report already delivered to an endpoint is not sent again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import structlog

from sealmail.ids import new_id
from sealmail.net.http_client import FetchError, SafeHttpClient
from sealmail.tlsrpt.report import PolicyReport, build_report, gzipped, parse_rua, report_mail
from sealmail.tlsrpt.service import DomainDay, Submitter, TlsReports

log = structlog.get_logger("sealmail.tlsrpt")


@dataclass(frozen=True, slots=True)
class StsFacts:
    """The MTA-STS policy in force for a domain, as the report names it (RFC 8460 §4.4)."""

    policy_string: list[str]
    mx: list[str]


class MailQueue(Protocol):
    def submit(self, tenant_id: str, *, sender: str, to: str, raw: bytes, message_id: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    tenant_id: str
    policy_domain: str
    rua: str
    ok: bool
    detail: str


class TlsReportSender:
    def __init__(
        self,
        reports: TlsReports,
        *,
        txt: Callable[[str], Awaitable[list[str]]],
        http: SafeHttpClient,
        mail: MailQueue,
        sts: Callable[[str], Awaitable[StsFacts | None]] | None = None,
    ) -> None:
        self.reports = reports
        self.txt = txt
        self.http = http
        self.mail = mail
        self.sts = sts

    async def run(self, day: date) -> list[Delivery]:
        """Send every report for ``day`` (UTC) not yet sent; one result per endpoint tried."""
        done: list[Delivery] = []
        for entry in self.reports.day(day):
            try:
                ruas = parse_rua(await self.txt(f"_smtp._tls.{entry.domain}"))
            except Exception as exc:  # noqa: BLE001 — a DNS failure skips the domain; the next run retries
                log.warning("tlsrpt.lookup_failed", domain=entry.domain, error=type(exc).__name__)
                continue
            submitter = self.reports.submitter(entry.tenant_id)
            pending = [r for r in ruas if not self.reports.was_sent(entry.tenant_id, entry.domain, day, r)]
            if submitter is None or not pending:
                continue
            report_id = f"{day:%Y-%m-%d}.{new_id('tlsrpt')}@{submitter.domain}"
            report = build_report(
                organization=submitter.organization,
                contact=f"mailto:tlsrpt@{submitter.domain}",
                report_id=report_id,
                day=day,
                policies=[await self._policy(entry)],
            )
            for rua in pending:
                ok, detail = await self._deliver(entry, submitter, day, rua, report)
                if ok:
                    self.reports.mark_sent(entry.tenant_id, entry.domain, day, rua, report_id)
                done.append(Delivery(entry.tenant_id, entry.domain, rua, ok, detail))
        return done

    async def _policy(self, entry: DomainDay) -> PolicyReport:
        # RFC 8460 §4.4: the policy the sender applied; MTA-STS is named when the domain has
        # one, DANE when its TLSA records were used or failed, else no-policy-found.
        facts = await self.sts(entry.domain) if self.sts is not None else None
        if facts is not None:
            kind, string, mx = "sts", facts.policy_string, facts.mx
        elif entry.sts_failure:  # the policy that failed them is gone from the cache now
            kind, string, mx = "sts", [], []
        elif entry.dane_verified or entry.tlsa_failure:
            kind, string, mx = "tlsa", [], []
        else:
            kind, string, mx = "no-policy-found", [], []
        return PolicyReport(kind, entry.domain, string, mx, entry.successes, dict(entry.failures))

    async def _deliver(
        self, entry: DomainDay, submitter: Submitter, day: date, rua: str, report: dict[str, object]
    ) -> tuple[bool, str]:
        if rua.lower().startswith("mailto:"):
            to = rua[len("mailto:") :].split("?", 1)[0]
            try:
                # Inside the try: the address comes from the recipient domain's DNS, and a
                # header it cannot be must fail this URI only, not the run.
                raw, message_id = report_mail(
                    sender=f"tlsrpt-noreply@{submitter.domain}",
                    to=to,
                    submitter=submitter.domain,
                    policy_domain=entry.domain,
                    day=day,
                    report=report,
                )
                queued = self.mail.submit(
                    entry.tenant_id,
                    sender=f"tlsrpt-noreply@{submitter.domain}",
                    to=to,
                    raw=raw,
                    message_id=message_id,
                )
            except Exception as exc:  # noqa: BLE001 — one refused address must not stop the run
                return False, f"not queued: {exc}"
            return True, f"queued as {queued}"
        try:
            response = await self.http.post(
                rua, gzipped(report), {"Content-Type": "application/tlsrpt+gzip"}, max_bytes=65536
            )
        except FetchError as exc:
            return False, exc.detail
        # RFC 8460 §5.4: any 2xx means accepted; anything else is a failed upload.
        if 200 <= response.status < 300:
            return True, f"HTTP {response.status}"
        return False, f"HTTP {response.status}"
