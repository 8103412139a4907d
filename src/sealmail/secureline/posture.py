"""A domain's transport posture beyond DKIM/SPF/DMARC: MTA-STS (RFC 8461) and TLS-RPT
(RFC 8460) records, checked in DNS, each either right or saying what to publish.

Both protect mail *to* the domain (and tell its owner when TLS fails); neither is needed
to send, so they are reported as recommendations (``OPTIONAL``), not failures that stop
``domains check``.  Only the MTA-STS TXT record is checked here; the policy file it
announces is served by the domain's own web server.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sealmail.crypto.dkim import CheckResult, RecordPurpose, TxtResolver
from sealmail.net.dns import DnsLookupError, to_ascii_domain

OPTIONAL = frozenset({RecordPurpose.MTA_STS, RecordPurpose.TLS_RPT})


async def _txt(resolver: TxtResolver, name: str) -> list[str] | str:
    try:
        return await resolver.txt(name)
    except DnsLookupError as exc:
        return str(exc)


def _fields(record: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in record.split(";") if "=" in part)
    return {k.strip().lower(): v.strip() for k, v in pairs}


def check_mta_sts(domain: str, answer: list[str] | str) -> CheckResult:
    name = f"_mta-sts.{domain}"
    publish = (
        f'publish TXT {name} "v=STSv1; id={datetime.now(UTC):%Y%m%d}01" and serve '
        f"https://mta-sts.{domain}/.well-known/mta-sts.txt "
        "(version: STSv1, mode: enforce, mx: <your MX hosts>, max_age: 604800)"
    )
    if isinstance(answer, str):
        return CheckResult(name, False, f"DNS lookup failed, try again: {answer}", RecordPurpose.MTA_STS)
    found = [r for r in answer if r.replace(" ", "").startswith("v=STSv1;")]
    if len(found) != 1:
        why = "no MTA-STS record" if not found else "several MTA-STS records (RFC 8461 §3.1 allows one)"
        return CheckResult(name, False, f"{why}: {publish}", RecordPurpose.MTA_STS)
    policy_id = _fields(found[0]).get("id", "")
    if not policy_id.isalnum() or len(policy_id) > 32:
        return CheckResult(
            name, False, f"the id must be 1–32 letters or digits: {publish}", RecordPurpose.MTA_STS
        )
    return CheckResult(name, True, f"MTA-STS announced (id {policy_id})", RecordPurpose.MTA_STS)


def check_tls_rpt(domain: str, answer: list[str] | str) -> CheckResult:
    name = f"_smtp._tls.{domain}"
    publish = f'publish TXT {name} "v=TLSRPTv1; rua=mailto:tls-reports@{domain}"'
    if isinstance(answer, str):
        return CheckResult(name, False, f"DNS lookup failed, try again: {answer}", RecordPurpose.TLS_RPT)
    found = [r for r in answer if r.replace(" ", "").startswith("v=TLSRPTv1;")]
    if len(found) != 1:
        why = "no TLS-RPT record" if not found else "several TLS-RPT records (RFC 8460 §3 allows one)"
        return CheckResult(name, False, f"{why}: {publish}", RecordPurpose.TLS_RPT)
    rua = [u.strip() for u in _fields(found[0]).get("rua", "").split(",") if u.strip()]
    if not rua or not all(u.startswith(("mailto:", "https:")) for u in rua):
        return CheckResult(
            name, False, f"rua must name mailto: or https: addresses: {publish}", RecordPurpose.TLS_RPT
        )
    return CheckResult(name, True, f"TLS reports go to {', '.join(rua)}", RecordPurpose.TLS_RPT)


async def transport_posture(domain: str, resolver: TxtResolver) -> list[CheckResult]:
    ascii_domain = to_ascii_domain(domain)
    sts, rpt = await asyncio.gather(
        _txt(resolver, f"_mta-sts.{ascii_domain}"), _txt(resolver, f"_smtp._tls.{ascii_domain}")
    )
    return [check_mta_sts(ascii_domain, sts), check_tls_rpt(ascii_domain, rpt)]
