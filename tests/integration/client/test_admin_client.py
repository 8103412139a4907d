"""The sync client's administration calls against the real API: tenant, domains, credentials,
recipient keys, quarantine, webhook endpoints and portal controls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.integration.webhooks.receiver import Receiver
from tests.support.dns_server import DnsServer

from sealmail.client import UNSET, OutgoingMessage, SealmailApiError, SealmailClient
from sealmail.crypto.pgp import generate_tenant_key

PHI_TEXT = "Patient SSN 123-45-6780. Diagnosis code E11.9."


def send(client: SealmailClient, text: str = "Hello") -> str:
    msg = OutgoingMessage(
        from_="noreply@clinic.example", to=["patient@example.net"], subject="S", text=text, stream="phi"
    )
    return client.send_message(msg)["id"]


def test_tenant_settings_and_policy_round_trip(client: SealmailClient) -> None:
    assert client.get_tenant()["name"] == "Clinic"
    assert client.update_tenant_settings(tls_policy={"transactional": "require"})["settings"][
        "tls_policy"
    ] == {"transactional": "require"}
    with pytest.raises(SealmailApiError) as info:
        client.update_tenant_settings(tls_policy={"phi": "opportunistic"})
    assert info.value.fields == ["tls_policy.phi"]
    settings = client.update_policy(key_discovery=False, secureline={"force_portal": True})["settings"]
    assert settings["key_discovery"] is False
    assert settings["secureline"]["force_portal"] is True
    with pytest.raises(SealmailApiError) as info:  # a weakening needs a written reason
        client.update_policy(secureline={"force_portal": False})
    assert info.value.fields == ["reason"]
    why = "Partners all have verified TLS; the portal confused patients."
    assert client.update_policy(secureline={"force_portal": False}, reason=why)["settings"]["secureline"] == {
        "force_portal": False
    }
    assert client.get_archive_key()["certificate"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    with pytest.raises(SealmailApiError) as info:
        client.get_smime_identity()
    assert info.value.status == 404


def test_domain_lifecycle_with_dns_checks(client: SealmailClient, dns: DnsServer) -> None:
    added = client.add_domain("new.example")
    assert added["verified"] is False
    assert "new.example" in [d["name"] for d in client.list_domains()]
    with pytest.raises(SealmailApiError):
        client.verify_domain("new.example")
    dns.add(added["verification"]["name"], "TXT", f'"{added["verification"]["value"]}"')
    assert client.verify_domain("new.example")["verified"] is True

    # Adding the domain generated its DKIM keys (issue 12.1): the records exist at once.
    first = client.domain_records("new.example")["records"]
    assert [r["purpose"] for r in first].count("dkim") == 2
    created = client.create_dkim("new.example")["records"]
    assert created == client.domain_records("new.example")["records"]
    assert created != first  # a rotation replaces the keys
    check = client.check_domain("new.example")
    assert check["ok"] is False  # the DKIM records are not published in the test zone
    assert check["checks"]


def test_api_keys_and_smtp_credentials_are_created_listed_and_revoked(client: SealmailClient) -> None:
    new = client.create_api_key("ci", ["send"])
    assert new["key"].startswith("sm_")
    assert new["id"] in [k["id"] for k in client.list_api_keys()]
    client.revoke_api_key(new["id"])
    revoked = next(k for k in client.list_api_keys() if k["id"] == new["id"])
    assert revoked["revoked_at"] is not None

    cred = client.create_smtp_credential("phi")
    assert cred["stream"] == "phi" and cred["password"]
    assert cred["id"] in [c["id"] for c in client.list_smtp_credentials()]
    client.revoke_smtp_credential(cred["id"])
    with pytest.raises(SealmailApiError) as info:
        client.revoke_smtp_credential("cred_missing")
    assert info.value.status == 404


def test_recipient_keys_upload_list_get_and_delete(client: SealmailClient) -> None:
    _, public = generate_tenant_key("Patient <patient@example.net>")
    uploaded = client.upload_key(public)
    assert [k["address"] for k in uploaded] == ["patient@example.net"]
    key_id = uploaded[0]["id"]
    assert [k["id"] for k in client.list_keys(address="patient@example.net")] == [key_id]
    assert client.get_key(key_id)["key"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    client.delete_key(key_id)
    assert client.list_keys() == []
    with pytest.raises(SealmailApiError) as info:
        client.upload_key("neither armored nor base64!")
    assert info.value.fields == ["key"]


def test_quarantined_message_is_listed_then_released(client: SealmailClient) -> None:
    client.update_policy(dlp={"actions": {"ssn": "quarantine"}})
    held = send(client, PHI_TEXT)
    assert [m["id"] for m in client.quarantine()] == [held]
    assert client.release(held)["id"] == held
    assert list(client.quarantine()) == []


def test_webhook_endpoint_crud_test_send_deliveries_and_replay(client: SealmailClient) -> None:
    with Receiver() as hook:
        created = client.create_webhook_endpoint(hook.url, event_types=["message.*"], description="EHR")
        assert created["secret"].startswith("whsec_")
        endpoint_id = created["id"]
        assert [e["id"] for e in client.list_webhook_endpoints()] == [endpoint_id]
        assert client.get_webhook_endpoint(endpoint_id)["description"] == "EHR"
        assert client.update_webhook_endpoint(endpoint_id, payload="full")["payload"] == "full"
        rotated = client.rotate_webhook_secret(endpoint_id, overlap_seconds=60)
        assert rotated["secret"] != created["secret"]

        result = client.send_webhook_test(endpoint_id)
        assert result["ok"] is True
        deliveries = list(client.webhook_deliveries(endpoint_id))
        assert [d["id"] for d in deliveries] == [result["delivery_id"]]
        assert client.replay_webhook_delivery(result["delivery_id"])["status"] == "pending"
        send(client)
        since = datetime.now(UTC) - timedelta(minutes=5)
        assert client.replay_webhook_endpoint(endpoint_id, since=since)["queued"] >= 1

        client.delete_webhook_endpoint(endpoint_id)
        with pytest.raises(SealmailApiError) as info:
            client.get_webhook_endpoint(endpoint_id)
        assert info.value.status == 404


def test_portal_settings_and_recall(client: SealmailClient) -> None:
    msg_id = send(client)
    later = datetime.now(UTC) + timedelta(days=3)
    configured = client.configure_portal(msg_id, expires_at=later, passphrase="correct horse")
    assert configured["requires_passphrase"] is True
    cleared = client.configure_portal(msg_id, passphrase=None, expires_at=UNSET)
    assert cleared["requires_passphrase"] is False
    assert cleared["expires_at"] is not None
    assert client.portal_status(msg_id)["message_id"] == msg_id
    recalled = client.recall(msg_id)
    assert recalled["recalled_at"] is not None
    # Nothing was sent yet (no worker here): the recall cancelled the one recipient too.
    assert recalled["cancelled"] == 1
    [rcpt] = client.get_message(msg_id)["recipients"]
    assert rcpt["status"] == "cancelled" and rcpt["portal_opens"] == 0 and rcpt["attempts"] == []
    with pytest.raises(SealmailApiError) as info:
        client.configure_portal(msg_id, passphrase="short")
    assert info.value.fields == ["passphrase"]
