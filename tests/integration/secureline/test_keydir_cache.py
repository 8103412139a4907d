"""KeyDirectory's "which addresses have keys" cache (issue 18).

A delivery group whose recipients have no key answers without a database read; a key
stored in this process is seen at once, one stored by another process (a second
``KeyDirectory`` on the same database) within ``KEYED_ADDRESSES_SECONDS``; a deleted key is
never used from memory, wherever it was deleted.  The keyed recipients' rows themselves are
kept between claims while the key directory's change counter (bumped by a trigger on every
change, migration 0027) is the one the worker's latest claim read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pysequoia
import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.support.sql_log import sql_log

from sealmail.app import Services
from sealmail.crypto.pgp import generate_tenant_key
from sealmail.secureline.keydir import KEYED_ADDRESSES_SECONDS, KeyDirectory, read_generation
from sealmail.store.tables import recipient_keys


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


def claim(services: Services, keydir: KeyDirectory) -> None:
    """What the worker does in each claim's transaction."""
    with services.engine.begin() as conn:
        keydir.observe_generation(read_generation(conn))


def test_every_change_to_the_keys_bumps_the_counter_in_its_transaction(
    services: Services, tenant: TenantFixture
) -> None:
    def generation() -> int | None:
        with services.engine.connect() as conn:
            return read_generation(conn)

    start = generation()
    assert start is not None
    key = services.keydir.upload(tenant.id, certificate("pat@patients.example"), "test")[0]
    after_upload = generation()
    assert after_upload is not None and after_upload > start
    with services.engine.begin() as conn:  # a writer that is not KeyDirectory: the trigger still counts
        conn.execute(sa.update(recipient_keys).values(source="wkd"))
    after_update = generation()
    assert after_update is not None and after_update > after_upload
    with services.engine.connect() as conn:  # rolled back: no bump is seen
        with conn.begin() as txn:
            conn.execute(sa.delete(recipient_keys))
            txn.rollback()
    assert generation() == after_update
    services.keydir.delete(tenant.id, key.id, actor="test")
    assert (generation() or 0) > after_update


def test_keyed_rows_are_kept_until_a_claim_sees_a_change_anywhere(
    services: Services, tenant: TenantFixture
) -> None:
    keydir = this_process(services, Clock())
    now = datetime.now(UTC)
    pat = services.keydir.upload(tenant.id, certificate("pat@patients.example"), "test")[0]
    addresses = ["pat@patients.example", "sam@patients.example"]
    assert keydir.kept_facts(tenant.id, addresses, now) is None  # no claim yet: nothing kept
    claim(services, keydir)
    first = keydir.facts(tenant.id, addresses, now)
    assert len(first["pat@patients.example"].pgp) == 1
    with sql_log(services.engine) as log:
        kept = keydir.kept_facts(tenant.id, addresses, now)
        claim(services, keydir)  # nothing changed: the rows stay
        assert keydir.kept_facts(tenant.id, addresses, now) == kept
    assert kept == first
    assert log.reads_of("recipient_keys") == 0
    services.keydir.delete(tenant.id, pat.id, actor="test")  # another process
    claim(services, keydir)
    assert keydir.kept_facts(tenant.id, addresses, now) is None
    assert pgp_fingerprints(keydir, tenant.id, "pat@patients.example") == []
    # Whatever answers from memory now says "no key" for pat.
    for answer in (keydir.cached_facts(tenant.id, addresses), keydir.kept_facts(tenant.id, addresses, now)):
        assert answer is None or answer["pat@patients.example"].pgp == ()


def test_rows_read_under_an_older_counter_are_not_kept(services: Services, tenant: TenantFixture) -> None:
    keydir = this_process(services, Clock())
    now = datetime.now(UTC)
    claim(services, keydir)
    services.keydir.upload(tenant.id, certificate("pat@patients.example"), "test")  # after the claim
    assert len(pgp_fingerprints(keydir, tenant.id, "pat@patients.example")) == 1
    # Read under a newer counter than the claim saw: used for this read, not kept.
    assert keydir.kept_facts(tenant.id, ["pat@patients.example"], now) is None
    keydir.upload(tenant.id, certificate("sam@patients.example"), "test")  # here: forgotten at once
    claim(services, keydir)
    keydir.facts(tenant.id, ["sam@patients.example"], now)
    assert keydir.kept_facts(tenant.id, ["sam@patients.example"], now) is not None
    keydir.delete(tenant.id, keydir.list(tenant.id, "sam@patients.example")[0].id, actor="test")
    assert keydir.kept_facts(tenant.id, ["sam@patients.example"], now) is None
