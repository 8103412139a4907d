"""Tenancy's hot-path caches (issue 18): SMTP AUTH, verified sender domains, tenant settings.

Each is checked for what it saves (no argon2, no database read while fresh) and for how it
forgets: a change in this process at once, a change by another process (a second
``Tenancy`` on the same database) within ``CACHE_SECONDS``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from tests.conftest import TenantFixture
from tests.support.sql_log import sql_log

from sealmail.app import Services
from sealmail.audit import AuditAction
from sealmail.store.tables import audit_log
from sealmail.tenancy.service import CACHE_SECONDS, Tenancy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingHasher(PasswordHasher):
    """argon2-cffi's hasher, counting the verifications it runs."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=64, parallelism=1)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verifications += 1
        return super().verify(hash, password)


def this_process(services: Services, clock: Clock) -> tuple[Tenancy, CountingHasher]:
    hasher = CountingHasher()
    return Tenancy(services.engine, services.tenancy.keyring, hasher, clock=clock), hasher


def signed_in(
    services: Services, tenant: TenantFixture, clock: Clock
) -> tuple[Tenancy, CountingHasher, tuple[str, str, str]]:
    """A Tenancy of "this process" that has just verified a new credential once."""
    tenancy, hasher = this_process(services, clock)
    credential = services.tenancy.create_smtp_credential(tenant.id, actor="test")
    assert tenancy.authenticate_smtp(credential[1], credential[2]) is not None
    return tenancy, hasher, credential


def auth_failures(services: Services, credential_id: str) -> int:
    with services.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(audit_log)
                .where(
                    audit_log.c.action == str(AuditAction.SMTP_AUTH_FAILED),
                    audit_log.c.target == credential_id,
                )
            ).scalar_one()
        )


def test_smtp_auth_runs_argon2_once_then_answers_the_exact_secret_from_memory(
    services: Services, tenant: TenantFixture
) -> None:
    tenancy, hasher, (cred_id, username, password) = signed_in(services, tenant, Clock())
    first = tenancy.authenticate_smtp(username, password)
    assert first is not None and first[0].credential_id == cred_id
    with sql_log(services.engine) as log:
        again = [tenancy.authenticate_smtp(username, password) for _ in range(5)]
    assert again == [first] * 5
    assert hasher.verifications == 1
    assert log.statements == []
    # A wrong secret for the cached user takes the full path: argon2, refusal, audit entry.
    assert tenancy.authenticate_smtp(username, password + "x") is None
    assert tenancy.authenticate_smtp(username[:-1], password) is None
    assert hasher.verifications == 3
    assert auth_failures(services, cred_id) == 1
    assert tenancy.authenticate_smtp(username, password) == first


def test_an_expired_entry_rereads_revocation_without_argon2(
    services: Services, tenant: TenantFixture
) -> None:
    clock = Clock()
    tenancy, hasher, (_, username, password) = signed_in(services, tenant, clock)
    clock.now += CACHE_SECONDS
    with sql_log(services.engine) as log:
        assert tenancy.authenticate_smtp(username, password) is not None
    assert log.reads_of("smtp_credentials") == 1
    assert hasher.verifications == 1


def test_revocation_takes_effect_at_once_here_and_within_the_bound_elsewhere(
    services: Services, tenant: TenantFixture
) -> None:
    clock = Clock()
    tenancy, _, (here, user_here, pw_here) = signed_in(services, tenant, clock)
    there, user_there, pw_there = services.tenancy.create_smtp_credential(tenant.id, actor="test")
    assert tenancy.authenticate_smtp(user_there, pw_there) is not None
    tenancy.revoke_smtp_credential(tenant.id, here, actor="test")
    assert tenancy.authenticate_smtp(user_here, pw_here) is None
    services.tenancy.revoke_smtp_credential(tenant.id, there, actor="test")  # another process
    clock.now += CACHE_SECONDS
    assert tenancy.authenticate_smtp(user_there, pw_there) is None
    assert auth_failures(services, there) == 0  # revoked: no row, so no tenant to charge


def test_verified_domains_are_read_once_and_a_newly_verified_one_is_never_refused(
    services: Services, tenant: TenantFixture
) -> None:
    tenancy, _ = this_process(services, Clock())
    assert tenancy.is_verified_sender_domain(tenant.id, "Clinic.Example")
    with sql_log(services.engine) as log:
        assert all(tenancy.is_verified_sender_domain(tenant.id, "clinic.example") for _ in range(5))
    assert log.statements == []
    assert not tenancy.is_verified_sender_domain(tenant.id, "lab.example")
    services.tenancy.add_domain(tenant.id, "lab.example", actor="test", verified=True)  # elsewhere
    assert tenancy.is_verified_sender_domain(tenant.id, "lab.example")
    tenancy.add_domain(tenant.id, "ward.example", actor="test")
    assert not tenancy.is_verified_sender_domain(tenant.id, "ward.example")
    tenancy.mark_domain_verified(tenant.id, "ward.example", actor="test")
    assert tenancy.is_verified_sender_domain(tenant.id, "ward.example")


def test_the_event_loop_peek_answers_only_from_a_fresh_cache_and_never_reads(
    services: Services, tenant: TenantFixture
) -> None:
    """The gateway's MAIL FROM asks ``cached_verified_sender_domain`` on its event loop first."""
    clock = Clock()
    tenancy, _ = this_process(services, clock)
    with sql_log(services.engine) as log:
        assert not tenancy.cached_verified_sender_domain(tenant.id, "clinic.example")  # nothing cached
    assert log.statements == []
    assert tenancy.is_verified_sender_domain(tenant.id, "clinic.example")  # fills the cache
    assert tenancy.cached_verified_sender_domain(tenant.id, "Clinic.Example")
    assert not tenancy.cached_verified_sender_domain(tenant.id, "lab.example")  # "ask", not "no"
    clock.now += CACHE_SECONDS + 1
    assert not tenancy.cached_verified_sender_domain(tenant.id, "clinic.example")  # expired


def test_tenant_settings_are_cached_and_forgotten_on_change(
    services: Services, tenant: TenantFixture
) -> None:
    clock = Clock()
    tenancy, _ = this_process(services, clock)
    assert tenancy.tenant_settings(tenant.id).get("harvest_keys") is None
    with sql_log(services.engine) as log:
        for _ in range(5):
            tenancy.tenant_settings(tenant.id)
    assert log.statements == []
    tenancy.update_settings(tenant.id, {"harvest_keys": True}, actor="test")
    assert tenancy.tenant_settings(tenant.id)["harvest_keys"] is True
    services.tenancy.update_settings(tenant.id, {"harvest_keys": None}, actor="test")  # elsewhere
    clock.now += CACHE_SECONDS
    settings: Any = tenancy.tenant_settings(tenant.id)
    assert "harvest_keys" not in settings
