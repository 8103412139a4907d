"""KeyDirectory's "which addresses have keys" cache (issue 18).

A delivery group whose recipients have no key answers without a database read; a key
stored in this process is seen at once, one stored by another process (a second
``KeyDirectory`` on the same database) within ``KEYED_ADDRESSES_SECONDS``; a deleted key is
never used from memory, wherever it was deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pysequoia
from tests.conftest import TenantFixture
from tests.support.sql_log import sql_log

from sealmail.app import Services
from sealmail.crypto.pgp import generate_tenant_key
from sealmail.secureline.keydir import KEYED_ADDRESSES_SECONDS, KeyDirectory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def certificate(address: str) -> bytes:
    return generate_tenant_key(f"Patient <{address}>")[1]


def this_process(services: Services, clock: Clock) -> KeyDirectory:
    return KeyDirectory(services.engine, lambda: services.keydir.trust, clock=clock)


def pgp_fingerprints(keydir: KeyDirectory, tenant_id: str, address: str) -> list[str]:
    return [f.fingerprint for f in keydir.facts(tenant_id, [address], datetime.now(UTC))[address].pgp]


def test_groups_without_keyed_recipients_do_not_read_the_database(
    services: Services, tenant: TenantFixture
) -> None:
    keydir = this_process(services, Clock())
    services.keydir.upload(tenant.id, certificate("pat@patients.example"), "test")
    recipients = [f"r{i}@patients.example" for i in range(5)]
    assert all(
        not k.pgp and not k.smime for k in keydir.facts(tenant.id, recipients, datetime.now(UTC)).values()
    )
    with sql_log(services.engine) as log:
        for _ in range(5):
            facts = keydir.facts(tenant.id, recipients, datetime.now(UTC))
            assert set(facts) == set(recipients)
    assert log.statements == []
    # A group with a keyed recipient still reads the keys themselves.
    with sql_log(services.engine) as log:
        assert len(pgp_fingerprints(keydir, tenant.id, "pat@patients.example")) == 1
    assert log.reads_of("recipient_keys") == 1


def test_a_key_stored_here_is_used_at_once_and_one_stored_elsewhere_within_the_bound(
    services: Services, tenant: TenantFixture
) -> None:
    clock = Clock()
    keydir = this_process(services, clock)
    assert pgp_fingerprints(keydir, tenant.id, "pat@patients.example") == []
    keydir.upload(tenant.id, certificate("pat@patients.example"), "test")
    assert len(pgp_fingerprints(keydir, tenant.id, "pat@patients.example")) == 1
    assert pgp_fingerprints(keydir, tenant.id, "sam@patients.example") == []
    services.keydir.upload(tenant.id, certificate("sam@patients.example"), "test")  # elsewhere
    clock.now += KEYED_ADDRESSES_SECONDS
    assert len(pgp_fingerprints(keydir, tenant.id, "sam@patients.example")) == 1


def test_a_deleted_key_is_never_used_from_memory(services: Services, tenant: TenantFixture) -> None:
    keydir = this_process(services, Clock())
    pat = services.keydir.upload(tenant.id, certificate("pat@patients.example"), "test")[0]
    sam = services.keydir.upload(tenant.id, certificate("sam@patients.example"), "test")[0]
    assert len(pgp_fingerprints(keydir, tenant.id, "pat@patients.example")) == 1
    services.keydir.delete(tenant.id, pat.id, actor="test")  # elsewhere, clock standing still
    assert pgp_fingerprints(keydir, tenant.id, "pat@patients.example") == []
    keydir.delete(tenant.id, sam.id, actor="test")
    with sql_log(services.engine) as log:
        assert pgp_fingerprints(keydir, tenant.id, "sam@patients.example") == []
    assert log.reads_of("recipient_keys") == 1  # the summary, re-read after the delete


def test_the_event_loop_peek_answers_only_no_key_from_a_fresh_summary(
    services: Services, tenant: TenantFixture
) -> None:
    """``cached_facts`` (SecureLine asks it on the loop first): "no key" or None, never a read."""
    clock = Clock()
    keydir = this_process(services, clock)
    services.keydir.upload(tenant.id, certificate("pat@patients.example"), "test")
    recipients = ["r1@patients.example", "R2@patients.example"]
    with sql_log(services.engine) as log:
        assert keydir.cached_facts(tenant.id, recipients) is None  # nothing cached yet: ask facts()
        keydir.facts(tenant.id, recipients, datetime.now(UTC))  # reads the summary
        peek = keydir.cached_facts(tenant.id, recipients)
        assert peek == keydir.facts(tenant.id, recipients, datetime.now(UTC))
        assert keydir.cached_facts(tenant.id, ["pat@patients.example", *recipients]) is None  # keyed
    assert log.reads_of("recipient_keys") == 1
    keydir.upload(tenant.id, certificate("r1@patients.example"), "test")  # dropped here at once
    assert keydir.cached_facts(tenant.id, recipients) is None
    keydir.facts(tenant.id, ["x@patients.example"], datetime.now(UTC))
    clock.now += KEYED_ADDRESSES_SECONDS
    assert keydir.cached_facts(tenant.id, ["x@patients.example"]) is None  # expired


def test_a_certificate_stored_again_under_its_fingerprint_is_used_as_stored_now(
    services: Services, tenant: TenantFixture
) -> None:
    """An OpenPGP fingerprint names the primary key only: a re-upload with a new expiry (or a
    revoked or added subkey) keeps it, and the parsed certificate kept in memory must not
    outlive the stored bytes it was parsed from."""
    keydir = this_process(services, Clock())
    address = "pat@patients.example"
    secret, public = generate_tenant_key(f"Patient <{address}>", validity=timedelta(days=30))
    services.keydir.upload(tenant.id, public, "test")
    [fact] = keydir.facts(tenant.id, [address], datetime.now(UTC))[address].pgp
    before = keydir.facts(tenant.id, [address], datetime.now(UTC))[address].pgp_certs[fact.fingerprint]
    assert before.info.expires is not None
    # The holder shortens the certificate's life and the tenant uploads the new version (elsewhere).
    sooner = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    updated = pysequoia.Cert.from_bytes(public).set_expiration(
        sooner, pysequoia.Tsk.from_bytes(secret).certifier()
    )
    services.keydir.upload(tenant.id, str(updated).encode("ascii"), "test")
    after = keydir.facts(tenant.id, [address], datetime.now(UTC))[address]
    assert [f.fingerprint for f in after.pgp] == [fact.fingerprint]
    assert after.pgp_certs[fact.fingerprint].info.expires == sooner
