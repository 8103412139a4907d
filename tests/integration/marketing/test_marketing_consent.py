"""The consent ledger and HIPAA authorizations over the API, on SQLite and PostgreSQL:
append-only events with the current state moved in the same transaction, the 164.508(c)
checks, and the one-click unsubscribe writing a revoke beside its suppression."""

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys

from sealmail.app import Services
from sealmail.engagement.tokens import Kind
from sealmail.marketing.tables import mkt_authorizations, mkt_consent_current, mkt_consent_events
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.store.tables import audit_log
from sealmail.suppressions.tables import suppressions


def authorization(**over: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body = {
        "purpose": "marketing",
        "information": "Name, address and the fact of a diabetes diagnosis",
        "disclosed_by": "Riverside Clinic",
        "disclosed_to": "Riverside Clinic marketing office",
        "purpose_statement": "Mailings about our diabetes education program",
        "expires_at": (now + timedelta(days=365)).isoformat(),
        "signed_by": "Pat Doe",
        "signed_at": (now - timedelta(minutes=5)).isoformat(),
        "statements": ["right_to_revoke", "conditioning", "redisclosure"],
        "document_sha256": hashlib.sha256(b"signed form").hexdigest(),
    }
    body.update(over)
    return body


def contact(client: TestClient, keys: Keys, email: str = "pat@example.net") -> str:
    r = client.post("/v1/marketing/contacts", json={"email": email}, headers=keys.sender)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def test_grants_and_revokes_append_events_and_move_the_current_state(
    client: TestClient, keys: Keys, services: Services
) -> None:
    cid = contact(client, keys)
    url = f"/v1/marketing/contacts/{cid}/consent"
    granted = client.post(
        url, json={"purpose": "fundraising", "action": "grant", "evidence": "form 12"}, headers=keys.sender
    )
    assert granted.status_code == 200, granted.text
    assert [(c["purpose"], c["state"]) for c in granted.json()["consents"]] == [("fundraising", "granted")]
    revoked = client.post(
        url, json={"purpose": "fundraising", "action": "revoke", "source": "mailto"}, headers=keys.sender
    )
    assert [(c["purpose"], c["state"]) for c in revoked.json()["consents"]] == [("fundraising", "revoked")]
    seen = client.get(url, headers=keys.reader).json()
    assert [(h["action"], h["source"]) for h in seen["history"]] == [("grant", "api"), ("revoke", "mailto")]
    assert seen["history"][0]["evidence_sha256"] == hashlib.sha256(b"form 12").hexdigest()
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mkt_consent_events)).scalar() == 2
        [current] = conn.execute(sa.select(mkt_consent_current)).all()
        last = conn.execute(
            sa.select(mkt_consent_events.c.id).order_by(mkt_consent_events.c.at.desc())
        ).first()
        audited = conn.execute(
            sa.select(sa.func.count()).where(
                audit_log.c.action == "mkt_consent:recorded", audit_log.c.target == cid
            )
        ).scalar()
    assert last is not None and current.event_id == last.id and audited == 2
    # authorize and expire are not for this route; unknown purposes are 422s.
    assert (
        client.post(
            url, json={"purpose": "marketing", "action": "authorize"}, headers=keys.sender
        ).status_code
        == 422
    )
    assert (
        client.post(url, json={"purpose": "sales", "action": "grant"}, headers=keys.sender).status_code == 422
    )


def test_an_authorization_needs_every_element_of_164_508_c(
    client: TestClient, keys: Keys, services: Services
) -> None:
    cid = contact(client, keys)
    url = f"/v1/marketing/contacts/{cid}/authorizations"
    incomplete = client.post(
        url,
        json=authorization(
            disclosed_to=" ",
            statements=["conditioning"],
            expires_at=(datetime.now(UTC) - timedelta(days=1)).isoformat(),
        ),
        headers=keys.sender,
    )
    assert incomplete.status_code == 422, incomplete.text
    assert {e["field"] for e in incomplete.json()["errors"]} == {"disclosed_to", "statements", "expires_at"}
    unpaid = client.post(url, json=authorization(remuneration=True), headers=keys.sender)
    assert unpaid.status_code == 422 and unpaid.json()["errors"][0]["field"] == "remuneration_statement"
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mkt_authorizations)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(mkt_consent_events)).scalar() == 0
    ok = client.post(
        url,
        json=authorization(remuneration=True, remuneration_statement="PharmaCo pays for this mailing"),
        headers=keys.sender,
    )
    assert ok.status_code == 201, ok.text
    state = client.get(f"/v1/marketing/contacts/{cid}/consent", headers=keys.reader).json()
    [marketing] = state["consents"]
    assert (marketing["purpose"], marketing["state"], marketing["authorization_id"]) == (
        "marketing",
        "authorized",
        ok.json()["id"],
    )
    assert marketing["expires_at"] is not None
    # Revoking marketing consent revokes the authorization (164.508(b)(5)).
    client.post(
        f"/v1/marketing/contacts/{cid}/consent",
        json={"purpose": "marketing", "action": "revoke"},
        headers=keys.sender,
    )
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(mkt_authorizations.c.revoked_at)).scalar() is not None


def test_an_expired_authorization_is_written_as_an_expire_event(
    client: TestClient, keys: Keys, services: Services
) -> None:
    cid = contact(client, keys)
    client.post(f"/v1/marketing/contacts/{cid}/authorizations", json=authorization(), headers=keys.sender)
    assert services.marketing.consent.expire_due() == 0
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_consent_current).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert services.marketing.consent.expire_due() == 1
    history = services.marketing.consent.history(
        services.tenancy.authenticate(keys.sender["Authorization"][7:]).tenant_id, cid
    )
    assert [h["action"] for h in history] == ["authorize", "expire"]
    assert services.marketing.consent.expire_due() == 0


def test_a_one_click_unsubscribe_revokes_marketing_in_the_ledger_beside_the_suppression(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture
) -> None:
    cid = contact(client, keys)
    body = MessageIn.model_validate(
        {
            "from": "news@clinic.example",
            "to": ["pat@example.net"],
            "subject": "News",
            "text": "Hi",
            "stream": "broadcast",
        }
    )
    accepted, _ = services.messages.submit(tenant.principal, compose.from_message(body, "sealmail.test", 10))
    rid = accepted.recipients[0].id
    token = services.engagement.token(Kind.UNSUBSCRIBE, rid)
    assert services.engagement.unsubscribe(token, "one_click") is not None
    history = services.marketing.consent.history(tenant.id, cid)
    assert [(h["purpose"], h["action"], h["source"]) for h in history] == [
        ("marketing", "revoke", "one_click")
    ]
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(suppressions.c.reason)).scalar() == "unsubscribe"
    # A second click writes nothing more.
    services.engagement.unsubscribe(token, "one_click")
    assert len(services.marketing.consent.history(tenant.id, cid)) == 1


def test_the_claim_gate_reads_authorizations_through_the_index(services: Services) -> None:
    """The gate reads the claimed contacts' authorizations at every claim; by contact alone
    the (tenant, contact, purpose) index could not serve it and each claim read the whole
    table.  The plan must search that index on both engines."""
    from sealmail.marketing.gate import authorizations_of

    query = authorizations_of(["ten_a"], ["ctc_1", "ctc_2"])
    with services.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " ".join(r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            assert "SEARCH mkt_authorizations USING INDEX ix_mkt_authorizations_contact" in plan, plan
            assert "SCAN mkt_authorizations" not in plan, plan
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # the table is empty: ask what can be used
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert "ix_mkt_authorizations_contact" in plan, plan
            cond = next(line for line in plan.splitlines() if "Index Cond" in line)
            assert "tenant_id" in cond, plan  # by contact alone: the whole index walked
        assert conn.execute(query).all() == []


def test_a_long_ledger_shows_its_newest_events_oldest_first(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture
) -> None:
    cid = contact(client, keys)
    for i in range(201):
        services.marketing.consent.change(
            tenant.id, cid, purpose="fundraising", channel="email",
            action="revoke" if i % 2 else "grant", source="api", actor="test", evidence=f"change {i}",
        )  # fmt: skip
    got = client.get(f"/v1/marketing/contacts/{cid}/consent", headers=keys.reader).json()
    history = got["history"]
    assert len(history) == 200
    # The latest change (the one the current state shows) is there; the first one is cut.
    assert (history[0]["evidence"], history[-1]["evidence"]) == ("change 1", "change 200")
    assert history[-1]["action"] == "grant" and got["consents"][0]["state"] == "granted"


def test_the_ledger_refuses_updates_and_deletes_in_the_database(
    client: TestClient, keys: Keys, services: Services
) -> None:
    """Append-only is a property of the store, not only of the code: rewriting or deleting
    an event fails whoever issues it; recording a new one still works."""
    cid = contact(client, keys)
    url = f"/v1/marketing/contacts/{cid}/consent"
    grant, revoke = ({"purpose": "fundraising", "action": a} for a in ("grant", "revoke"))
    assert client.post(url, json=grant, headers=keys.sender).is_success
    attempts = [
        sa.update(mkt_consent_events).values(action="revoke"),
        sa.update(mkt_consent_events).values(at=mkt_consent_events.c.at),  # even a no-op rewrite
        sa.delete(mkt_consent_events),
    ]
    if services.engine.dialect.name == "postgresql":
        attempts.append(sa.text("TRUNCATE mkt_consent_events CASCADE"))
    for statement in attempts:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), services.engine.begin() as conn:
            conn.execute(statement)
    assert client.post(url, json=revoke, headers=keys.sender).is_success
    by_time = sa.select(mkt_consent_events.c.action).order_by(mkt_consent_events.c.at)
    with services.engine.connect() as conn:
        actions = conn.execute(by_time).scalars()
        assert list(actions) == ["grant", "revoke"]
