"""The patients' registers answer "nobody here asked" from memory (issue 18).

A delivery group whose recipients have no confidential-communication preference and no
confirmed plain-mail request costs no database read; a preference or request recorded in
this process is obeyed at once, one recorded by another process (a second register on the
same database) within its bound; a standing row is always read, so a revoked one is never
obeyed from memory.
"""

from __future__ import annotations

import pytest
from tests.conftest import TenantFixture
from tests.support.sql_log import sql_log

from sealmail.app import Services
from sealmail.evidence.plain import CONFIRMED_ADDRESSES_SECONDS, PlainRegister
from sealmail.evidence.preferences import PREFERENCE_ADDRESSES_SECONDS, PreferenceRegister

pytestmark = pytest.mark.hipaa("164.522(b)")

PAT = "pat@patients.example"
OTHERS = [f"r{i}@patients.example" for i in range(5)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_groups_nobody_in_which_asked_read_neither_register(
    services: Services, tenant: TenantFixture
) -> None:
    prefs = PreferenceRegister(services.engine, clock=Clock())
    plain = PlainRegister(services.engine, clock=Clock())
    services.evidence.preferences.record(tenant.id, PAT, "portal_only", "staff:ann", "staff", "form in chart")
    services.evidence.plain.record(tenant.id, "sam@patients.example", "signed form", "staff:ann")
    assert prefs.standing(tenant.id, OTHERS) == {} and plain.confirmed(tenant.id, OTHERS) == {}
    with sql_log(services.engine) as log:
        for _ in range(5):
            assert prefs.cached_none_of(tenant.id, OTHERS) and plain.cached_none_of(tenant.id, OTHERS)
            assert prefs.standing(tenant.id, OTHERS) == {} and plain.confirmed(tenant.id, OTHERS) == {}
    assert log.statements == []
    # Anyone on record is read from the database, every time.
    assert not prefs.cached_none_of(tenant.id, [PAT.upper(), *OTHERS])
    with sql_log(services.engine) as log:
        assert prefs.standing(tenant.id, [PAT, *OTHERS])[PAT].portal_only
        assert set(plain.confirmed(tenant.id, ["sam@patients.example"])) == {"sam@patients.example"}
    assert log.reads_of("comms_preferences") == 1 and log.reads_of("plain_requests") == 1


def test_a_preference_recorded_here_binds_at_once_and_elsewhere_within_the_bound(
    services: Services, tenant: TenantFixture
) -> None:
    clock = Clock()
    prefs = PreferenceRegister(services.engine, clock=clock)
    assert prefs.standing(tenant.id, [PAT]) == {}
    prefs.record(tenant.id, PAT, "portal_only", "staff:ann", "staff", "form in chart")
    assert not prefs.cached_none_of(tenant.id, [PAT])
    assert prefs.standing(tenant.id, [PAT])[PAT].portal_only
    sam = "sam@patients.example"
    assert prefs.standing(tenant.id, [sam]) == {}
    services.evidence.preferences.record(tenant.id, sam, "portal_only", "patient", "portal")  # elsewhere
    clock.now += PREFERENCE_ADDRESSES_SECONDS
    assert not prefs.cached_none_of(tenant.id, [sam])
    assert prefs.standing(tenant.id, [sam])[sam].portal_only


def test_a_revoked_preference_or_request_is_never_obeyed_from_memory(
    services: Services, tenant: TenantFixture
) -> None:
    prefs = PreferenceRegister(services.engine, clock=Clock())
    plain = PlainRegister(services.engine, clock=Clock())
    pref = services.evidence.preferences.record(tenant.id, PAT, "portal_only", "staff:ann", "staff", "chart")
    request = services.evidence.plain.record(tenant.id, PAT, "signed form", "staff:ann")
    assert prefs.standing(tenant.id, [PAT]) and plain.confirmed(tenant.id, [PAT])
    # Revoked elsewhere, the clock standing still: the next delivery already ignores them.
    services.evidence.preferences.revoke(tenant.id, pref.id, "staff:ann", "staff")
    services.evidence.plain.revoke(tenant.id, request.id, "staff:ann", "staff")
    assert prefs.standing(tenant.id, [PAT]) == {} and plain.confirmed(tenant.id, [PAT]) == {}


def test_a_confirmation_elsewhere_is_used_within_the_bound(services: Services, tenant: TenantFixture) -> None:
    clock = Clock()
    plain = PlainRegister(services.engine, clock=clock)
    assert plain.confirmed(tenant.id, [PAT]) == {}
    services.evidence.plain.record(tenant.id, PAT, "signed form", "staff:ann")
    clock.now += CONFIRMED_ADDRESSES_SECONDS
    assert set(plain.confirmed(tenant.id, [PAT])) == {PAT}
