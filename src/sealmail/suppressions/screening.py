"""Checking addresses against the list: at intake (one query per batch) and at claim time.

See ``suppressions.service`` for the rules; this module only reads the list and rejects
claimed broadcast recipients that were suppressed while they waited in the queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.domain.statuses import RecipientStatus
from sealmail.domain.tls_policy import Stream
from sealmail.store import events as ev
from sealmail.store.tables import recipients
from sealmail.suppressions.rules import CHUNK, SuppressionReason, match, normalize
from sealmail.suppressions.tables import suppressions as sup

# Built once: constructing this select per batch cost more CPU than running it (every
# accepted message asks it).  ``tenant IN … AND address IN …`` searches the unique index; a
# row-value ``(tenant, address) IN (VALUES …)`` made SQLite scan the table.
_LOOKUP = sa.select(sup.c.tenant_id, sup.c.address, sup.c.stream, sup.c.reason).where(
    sup.c.tenant_id.in_(sa.bindparam("b_tenants", expanding=True)),
    sup.c.address.in_(sa.bindparam("b_addresses", expanding=True)),
    sa.or_(sup.c.expires_at.is_(None), sup.c.expires_at > sa.bindparam("b_now")),
)


def lookup(
    conn: Connection, pairs: Iterable[tuple[str, str]], now: datetime | None = None
) -> dict[tuple[str, str], dict[str, SuppressionReason]]:
    """Active entries for (tenant id, address) pairs: {(tenant, normalized address): {stream: reason}}.

    One query per ``CHUNK`` pairs, whatever the streams: callers pick the stream they need
    (``match``).  This is what a batch of accepted messages of several tenants asks.
    """
    now = now or datetime.now(UTC)
    wanted = {(t, normalize(a)) for t, a in pairs}
    tenants = sorted({t for t, _ in wanted})
    addresses = sorted({a for _, a in wanted})
    found: dict[tuple[str, str], dict[str, SuppressionReason]] = {}
    for i in range(0, len(addresses), CHUNK):
        # The few rows of another pair's tenant this may return are dropped below.
        rows = conn.execute(
            _LOOKUP, {"b_tenants": tenants, "b_addresses": addresses[i : i + CHUNK], "b_now": now}
        )
        for r in rows:
            if (r.tenant_id, r.address) in wanted:
                found.setdefault((r.tenant_id, r.address), {})[r.stream] = SuppressionReason(r.reason)
    return found


def suppressed(
    conn: Connection,
    tenant_id: str,
    stream: str,
    addresses: Iterable[str],
    now: datetime | None = None,
) -> dict[str, SuppressionReason]:
    """The suppressed ones among ``addresses`` on ``stream`` (or on every stream), by normalized address."""
    found = lookup(conn, ((tenant_id, a) for a in addresses), now)
    out: dict[str, SuppressionReason] = {}
    for (_, addr), entries in found.items():
        reason = match(entries, stream)
        if reason is not None:
            out[addr] = reason
    return out


def reject_claimed(
    conn: Connection, worker: str, claimed: Sequence[tuple[str, str, str, str]], now: datetime | None = None
) -> set[str]:
    """Reject claimed recipients suppressed since they were accepted; their ids.

    ``claimed``: (recipient id, tenant id, message id, address) of broadcast recipients a
    worker has just leased.  A campaign can sit in the queue (``send_at``, retries) for
    hours; an unsubscribe or complaint in between must stop it.  Only the broadcast stream
    is checked here: it never bypasses the list, so intake's decision cannot be stale for
    another reason.  One lookup per claim; the lease owner guard keeps a recipient another
    worker took over untouched.
    """
    now = now or datetime.now(UTC)
    found = lookup(conn, ((t, a) for _, t, _, a in claimed), now)
    rejected: set[str] = set()
    for rid, tenant_id, message_id, address in claimed:
        why = match(found.get((tenant_id, normalize(address))), str(Stream.BROADCAST))
        if why is None:
            continue
        done = conn.execute(
            sa.update(recipients)
            .where(
                recipients.c.id == rid,
                recipients.c.status == RecipientStatus.DELIVERING,
                recipients.c.lease_owner == worker,
            )
            .values(
                status=RecipientStatus.REJECTED,
                last_reason="suppressed",
                last_detail=f"suppressed: {why}",
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        ).rowcount
        if done:
            ev.emit(
                conn,
                tenant_id=tenant_id,
                message_id=message_id,
                type_=ev.EventType.REJECTED,
                recipient_id=rid,
                recipient=address,
                data={"reason": "suppressed", "suppression": str(why), "at": "delivery"},
                at=now,
            )
            rejected.add(rid)
    return rejected
