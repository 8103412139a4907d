"""Delivery outcomes feed the list: a real loopback MX answers, the worker records, the list follows.

Reuses the delivery ``Pipeline`` harness (accept → queue → worker → MX over TLS) on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from tests.integration.delivery.test_worker import Pipeline, pipeline

from sealmail.store.tables import audit_log, messages
from sealmail.suppressions import service as sp
from sealmail.suppressions.tables import suppressions

__all__ = ["pipeline"]


def entries(p: Pipeline) -> list[sa.Row[tuple[object, ...]]]:
    with p.services.engine.connect() as conn:
        return list(conn.execute(sa.select(suppressions).order_by(suppressions.c.address)))


def test_a_550_5_1_1_suppresses_the_address_on_every_stream_and_the_next_send_is_rejected(
    pipeline: Pipeline,
) -> None:
    mid = pipeline.send(["permfail-550@example.net", "patient@example.net"])
    pipeline.run_worker()
    [entry] = entries(pipeline)
    assert (entry.address, entry.stream, entry.reason, entry.source) == (
        "permfail-550@example.net",
        "*",
        "hard_bounce",
        "smtp",
    )
    assert entry.message_id == mid and entry.expires_at is None
    assert entry.tenant_id == pipeline.tenant.id
    with pipeline.services.engine.connect() as conn:
        audited = conn.execute(
            sa.select(audit_log.c.actor, audit_log.c.target).where(
                audit_log.c.action == "suppression:created"
            )
        ).one()
    assert tuple(audited) == ("system", entry.id)

    again = pipeline.send(["permfail-550@example.net"], stream="broadcast")
    [rcpt] = pipeline.message(again)["recipients"]
    assert (rcpt["status"], rcpt["last_reason"]) == ("rejected", "suppressed")
    assert pipeline.event_types(again) == ["message.accepted", "message.rejected"]
    assert pipeline.run_worker() == 0
    assert len(pipeline.sink.messages) == 1  # only the first message's good recipient


def test_expiry_after_repeated_soft_failures_suppresses_for_thirty_days(pipeline: Pipeline) -> None:
    mid = pipeline.send(["tempfail-451@example.net"])
    for _ in range(sp.SOFT_BOUNCE_MIN_ATTEMPTS - 1):
        pipeline.run_worker()
        pipeline.make_due()
    assert entries(pipeline) == []  # deferrals alone never suppress
    # The message's lifetime runs out before the next attempt ends.
    with pipeline.services.engine.begin() as conn:
        conn.execute(
            sa.update(messages)
            .where(messages.c.id == mid)
            .values(created_at=datetime.now(UTC) - timedelta(days=10))
        )
    pipeline.run_worker()
    [rcpt] = pipeline.message(mid)["recipients"]
    assert rcpt["status"] == "expired"
    [entry] = entries(pipeline)
    assert (entry.address, entry.stream, entry.reason) == ("tempfail-451@example.net", "*", "soft_bounce")
    assert entry.expires_at is not None
    ttl = entry.expires_at - datetime.now(UTC)
    assert timedelta(days=29, hours=23) < ttl <= timedelta(days=30)


def test_a_delivery_clears_a_soft_bounce_entry_but_not_a_hard_one(pipeline: Pipeline) -> None:
    # Queued before the entries existed: intake did not see them, delivery does.
    pipeline.send(["patient@example.net", "nurse@example.net"])
    with pipeline.services.engine.begin() as conn:
        for address, reason in (
            ("patient@example.net", sp.SuppressionReason.SOFT_BOUNCE),
            ("nurse@example.net", sp.SuppressionReason.HARD_BOUNCE),
        ):
            sp.suppress(
                conn,
                tenant_id=pipeline.tenant.id,
                stream="*",
                address=address,
                reason=reason,
                source="test",
                actor="test",
                expires_at=datetime.now(UTC) + sp.SOFT_BOUNCE_TTL if reason == "soft_bounce" else None,
            )
    pipeline.run_worker()
    assert [(e.address, e.reason) for e in entries(pipeline)] == [("nurse@example.net", "hard_bounce")]
    with pipeline.services.engine.connect() as conn:
        removed = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "suppression:removed")
        ).scalar_one()
    assert removed["source"] == "delivered"


def test_an_unsubscribe_after_intake_stops_a_queued_broadcast_at_delivery(pipeline: Pipeline) -> None:
    # A campaign accepted before the recipient unsubscribed is still in the queue: the
    # worker checks the list again when it claims broadcast mail.
    broadcast = pipeline.send(["patient@example.net", "nurse@example.net"], stream="broadcast")
    phi = pipeline.send(["patient@example.net"], stream="phi")
    with pipeline.services.engine.begin() as conn:
        sp.suppress(
            conn,
            tenant_id=pipeline.tenant.id,
            stream="broadcast",
            address="Patient@Example.net",
            reason=sp.SuppressionReason.UNSUBSCRIBE,
            source="one_click",
            actor="recipient",
        )
    pipeline.run_worker()
    statuses = {r["email"]: r["status"] for r in pipeline.message(broadcast)["recipients"]}
    assert statuses == {"patient@example.net": "rejected", "nurse@example.net": "delivered"}
    assert pipeline.event_types(broadcast).count("message.rejected") == 1
    # The phi message is not on the unsubscribed stream: delivered.
    assert [r["status"] for r in pipeline.message(phi)["recipients"]] == ["delivered"]
    delivered_to = sorted(rcpt for m in pipeline.sink.messages for rcpt in m.rcpt_tos)
    assert delivered_to == ["nurse@example.net", "patient@example.net"]
