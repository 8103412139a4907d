"""Pre-send compliance checks, run when a campaign is started; every failure is named.

* ``dkim_alignment``: the From domain is one of the tenant's verified sender domains (or a
  subdomain of one: DMARC relaxed alignment) with an active DKIM key, so the signature's
  ``d=`` aligns with the From header and DMARC passes at Gmail and Yahoo.
* ``postal_address``: marketing and fundraising mail carries the sender's valid physical
  postal address (CAN-SPAM, 16 CFR 316.5 and 15 U.S.C. 7704(a)(5)(A)(iii)): the tenant
  setting ``marketing.postal_address`` is set and every body part of every variant shows it,
  as ``{{ postal_address }}`` (filled in at render) or literally.
* ``unsubscribe_link``: marketing and fundraising bodies tell the reader how to opt out
  (CAN-SPAM 7704(a)(5)(A)(ii); HIPAA 164.514(f)(2)(ii) for fundraising): the text part
  mentions unsubscribing and the HTML part has a link about it.  The broadcast stream also
  adds the RFC 8058 one-click headers; a body link is what a reader actually sees.

Tracking on PHI purposes is not a failed check but a recorded decision: treatment and
operations messages go on the phi stream, and open or click tracking there would record a
patient's reading of a clinical message (itself PHI).  It is off by default — the phi
stream is tracked only when the tenant lists ``"phi"`` by name in ``tracking.streams``
(``engagement.policy``), an explicit opt-in — and ``phi_tracking`` says whether this send
will be tracked, so the campaign or journey that goes ahead records the decision in its
audit entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.marketing import Purpose
from sealmail.domain.tls_policy import Stream
from sealmail.engagement.policy import plan
from sealmail.store.tables import sender_domains, tenant_identities, tenants
from sealmail.templates.render import Source

FOOTER_PURPOSES = frozenset({Purpose.MARKETING, Purpose.FUNDRAISING})
PHI_PURPOSES = frozenset({Purpose.TREATMENT, Purpose.OPERATIONS})
POSTAL_VARIABLE = re.compile(r"\{\{\s*postal_address\b")
UNSUBSCRIBE_WORD = re.compile(r"unsubscribe|opt[ -]?out", re.IGNORECASE)
# An <a> element (its tag and its text each at most ANCHOR_SPAN characters) whose href or text
# speaks of unsubscribing.
ANCHOR_SPAN = 2000
_A_OPEN = re.compile(r"<a\b", re.IGNORECASE)
_A_CLOSE = re.compile(r"</a>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Failure:
    check: str
    message: str


def postal_address(settings: Mapping[str, Any]) -> str:
    """The tenant's ``marketing.postal_address`` ('' when unset)."""
    raw = settings.get("marketing")
    value = raw.get("postal_address") if isinstance(raw, Mapping) else None
    return value.strip() if isinstance(value, str) else ""


def tenant_settings(conn: Connection, tenant_id: str) -> Mapping[str, Any]:
    value = conn.execute(sa.select(tenants.c.settings).where(tenants.c.id == tenant_id)).scalar()
    return value if isinstance(value, Mapping) else {}


def check(
    conn: Connection,
    tenant_id: str,
    purpose: Purpose,
    from_address: str,
    variants: Sequence[tuple[str, Source]],
) -> list[Failure]:
    """Every failed check for sending this campaign or journey step (empty: it may send)."""
    failures = _dkim(conn, tenant_id, from_address)
    if purpose in FOOTER_PURPOSES:
        failures += _footer(postal_address(tenant_settings(conn, tenant_id)), variants)
    return failures


def phi_tracking(settings: Mapping[str, Any], purpose: Purpose) -> bool:
    """Whether mail of this PHI purpose will be tracked: only when the tenant opted the phi
    stream in by name (the default leaves it out); False for the other purposes."""
    return purpose in PHI_PURPOSES and plan(settings, str(Stream.PHI)).tracks


def tracking_decision(settings: Mapping[str, Any], purpose: Purpose) -> dict[str, str]:
    """What a start or save audits about tracking a PHI purpose (nothing for the others)."""
    if purpose not in PHI_PURPOSES:
        return {}
    return {"phi_tracking": "tenant_opt_in" if phi_tracking(settings, purpose) else "off"}


def _dkim(conn: Connection, tenant_id: str, from_address: str) -> list[Failure]:
    try:
        domain = parse_address(from_address, "from").domain.lower()
    except InvalidAddress as exc:
        return [Failure("dkim_alignment", exc.reason)]
    candidates = [domain]
    parts = domain.split(".")
    candidates += [".".join(parts[i:]) for i in range(1, len(parts) - 1)]
    verified = set(
        conn.execute(
            sa.select(sender_domains.c.name).where(
                sender_domains.c.tenant_id == tenant_id,
                sender_domains.c.verified_at.is_not(None),
                sa.func.lower(sender_domains.c.name).in_(candidates),
            )
        ).scalars()
    )
    if not verified:
        return [Failure("dkim_alignment", f"{domain} is not a verified sender domain of this tenant")]
    keyed = conn.execute(
        sa.select(sa.func.count()).where(
            tenant_identities.c.tenant_id == tenant_id,
            tenant_identities.c.kind == "dkim",
            tenant_identities.c.active.is_(True),
            # ``<selector>._domainkey.<domain>`` compared as a literal suffix: in a LIKE
            # pattern the ``_`` of ``_domainkey`` (or one in a name) would match any character.
            sa.or_(
                *(
                    sa.func.lower(tenant_identities.c.name).endswith(
                        f"._domainkey.{d.lower()}", autoescape=True
                    )
                    for d in verified
                )
            ),
        )
    ).scalar()
    if not keyed:
        return [Failure("dkim_alignment", f"{domain} has no active DKIM key; POST /v1/domains/{domain}/dkim")]
    return []


def _footer(address: str, variants: Sequence[tuple[str, Source]]) -> list[Failure]:
    out: list[Failure] = []
    if not address:
        out.append(
            Failure(
                "postal_address",
                "set the tenant's marketing.postal_address (PATCH /v1/tenant/settings); "
                "CAN-SPAM requires it in every commercial message",
            )
        )
    literal = " ".join(address.split()).lower()
    for name, source in variants:
        for part, body in (("html", source.html), ("text", source.text)):
            if body is None:
                continue
            flat = " ".join(body.split()).lower()
            if not POSTAL_VARIABLE.search(body) and not (literal and literal in flat):
                out.append(
                    Failure(
                        "postal_address", f"variant {name}: the {part} part shows no {{{{ postal_address }}}}"
                    )
                )
            if not _has_unsubscribe(part, body):
                what = "link" if part == "html" else "instruction"
                out.append(
                    Failure("unsubscribe_link", f"variant {name}: the {part} part has no unsubscribe {what}")
                )
    return out


def _has_unsubscribe(part: str, body: str) -> bool:
    if part == "text":
        return UNSUBSCRIBE_WORD.search(body) is not None
    return any(UNSUBSCRIBE_WORD.search(anchor) for anchor in anchors(body))


def anchors(body: str) -> Iterator[str]:
    """Each ``<a ...>...</a>`` element of ``body``, in order, found in linear time.

    The regex this replaces, ``<a\\b[^>]{0,2000}>(?:(?!</a>).){0,2000}</a>``, retried up to
    2000 characters at every "<a": a 1 M-character template of "<a>" took 9 s per variant.
    Here the next ">" and the next "</a>" are found once and reused by every "<a" before them.
    """
    resume = 0
    gt = -1
    close: re.Match[str] | None = None
    for opening in _A_OPEN.finditer(body):
        if opening.start() < resume:
            continue
        if gt < opening.end():
            gt = body.find(">", opening.end())
            if gt < 0:
                return
        if gt - opening.end() > ANCHOR_SPAN:
            continue
        if close is None or close.start() <= gt:
            close = _A_CLOSE.search(body, gt + 1)
            if close is None:
                return
        if close.start() - (gt + 1) > ANCHOR_SPAN:
            continue
        resume = close.end()
        yield body[opening.start() : close.end()]
