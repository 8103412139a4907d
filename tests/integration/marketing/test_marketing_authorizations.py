"""Reading stored HIPAA authorizations back over the API, on SQLite and PostgreSQL: every
164.508(c) element exactly as recorded, newest first, a derived state, the tenant wall,
and an audit entry for each read."""

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys
from tests.integration.marketing.test_marketing_consent import authorization, contact

from sealmail.app import Services
from sealmail.domain.marketing import AuthorizationState, authorization_state
from sealmail.marketing.tables import mkt_authorizations
from sealmail.store.tables import audit_log

ELEMENTS = (
    "purpose",
    "information",
    "disclosed_by",
    "disclosed_to",
    "purpose_statement",
    "signed_by",
    "remuneration",
    "remuneration_statement",
    "document_sha256",
)


def url(cid: str) -> str:
    return f"/v1/marketing/contacts/{cid}/authorizations"


def test_every_authorization_reads_back_with_all_its_elements_newest_first(
    client: TestClient, keys: Keys, services: Services
) -> None:
    cid = contact(client, keys)
    first = authorization(information="Name and the fact of a diabetes diagnosis — Ünïcode 糖尿病")
    paid = authorization(
        purpose="fundraising",
        # An offset other than UTC: read back as the same instant, in UTC.
        expires_at=(datetime.now(UTC) + timedelta(days=30)).astimezone().isoformat(),
        statements=["redisclosure", "right_to_revoke", "conditioning"],
        remuneration=True,
        remuneration_statement="PharmaCo pays <b>us</b> for this mailing",
    )
    made = []
    for body in (first, paid):
        r = client.post(url(cid), json=body, headers=keys.sender)
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    # The first one an hour older, so "newest first" does not rest on clock resolution.
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_authorizations)
            .where(mkt_authorizations.c.id == made[0])
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )

    got = client.get(url(cid), headers=keys.reader)

    assert got.status_code == 200, got.text
    data = got.json()["data"]
    assert [a["id"] for a in data] == [made[1], made[0]]
    sender = services.tenancy.authenticate(keys.sender["Authorization"][7:]).credential_id
    for shown, body in zip(data, (paid, first), strict=True):
        assert {k: shown[k] for k in ELEMENTS} == {
            k: body.get(k, False if k == "remuneration" else None) for k in ELEMENTS
        }
        assert shown["statements"] == sorted(body["statements"])
        for when in ("expires_at", "signed_at"):
            assert datetime.fromisoformat(shown[when]) == datetime.fromisoformat(body[when])
            assert datetime.fromisoformat(shown[when]).utcoffset() == timedelta(0)
        assert (shown["contact_id"], shown["created_by"], shown["revoked_at"]) == (cid, sender, None)
        assert shown["state"] == "active"
        assert datetime.fromisoformat(shown["created_at"]) <= datetime.now(UTC)


def test_the_state_says_expired_and_revoked_and_revocation_wins(
    client: TestClient, keys: Keys, services: Services
) -> None:
    cid = contact(client, keys)
    ids = [client.post(url(cid), json=authorization(), headers=keys.sender).json()["id"] for _ in range(2)]
    past = datetime.now(UTC) - timedelta(seconds=1)
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_authorizations).where(mkt_authorizations.c.id == ids[0]).values(expires_at=past)
        )
    states = {a["id"]: a["state"] for a in client.get(url(cid), headers=keys.reader).json()["data"]}
    assert states == {ids[0]: "expired", ids[1]: "active"}

    # Revoking marketing consent revokes every authorization not yet revoked (164.508(b)(5)),
    # the expired one too: revocation wins over expiry.
    revoke = {"purpose": "marketing", "action": "revoke"}
    client.post(f"/v1/marketing/contacts/{cid}/consent", json=revoke, headers=keys.sender)
    data = client.get(url(cid), headers=keys.reader).json()["data"]
    assert {a["id"]: a["state"] for a in data} == {ids[0]: "revoked", ids[1]: "revoked"}
    assert all(a["revoked_at"] is not None for a in data)


def test_revocation_wins_over_expiry_in_the_pure_rule() -> None:
    now = datetime.now(UTC)
    assert authorization_state(now, now - timedelta(days=1), now) is AuthorizationState.REVOKED
    assert authorization_state(None, now, now) is AuthorizationState.EXPIRED
    assert authorization_state(None, now + timedelta(seconds=1), now) is AuthorizationState.ACTIVE


def test_another_tenants_contact_and_an_unknown_contact_are_404s(
    client: TestClient, keys: Keys, other_tenant: TenantFixture, services: Services
) -> None:
    cid = contact(client, keys)
    assert client.post(url(cid), json=authorization(), headers=keys.sender).status_code == 201
    theirs = {"Authorization": f"Bearer {other_tenant.api_key}"}

    foreign = client.get(url(cid), headers=theirs)
    unknown = client.get(url("ctc_nope"), headers=keys.reader)

    for r in (foreign, unknown):
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "Riverside" not in r.text
    assert client.get(url(cid)).status_code == 401
    with services.engine.connect() as conn:
        reads = conn.execute(
            sa.select(sa.func.count()).where(audit_log.c.action == "mkt_authorization:read")
        ).scalar()
    assert reads == 0


def test_each_read_is_audited_with_the_ids_shown_never_their_text(
    client: TestClient, keys: Keys, services: Services
) -> None:
    cid = contact(client, keys)
    aid = client.post(url(cid), json=authorization(), headers=keys.sender).json()["id"]
    reader = services.tenancy.authenticate(keys.reader["Authorization"][7:])

    assert client.get(url(cid), headers=keys.reader).status_code == 200

    with services.engine.connect() as conn:
        [entry] = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "mkt_authorization:read")
        ).all()
    assert (entry.actor, entry.tenant_id, entry.target) == (reader.credential_id, reader.tenant_id, cid)
    assert entry.details == {"authorizations": [aid]}
    assert "Riverside" not in str(entry.details)
    assert hashlib.sha256(b"signed form").hexdigest() not in str(entry.details)
