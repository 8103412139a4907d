"""``Identities.cached_dkim_signer``: SecureLine's check on the event loop, with no I/O (issue 18)."""

from __future__ import annotations

from tests.conftest import TenantFixture
from tests.support.sql_log import sql_log

from sealmail.app import Services


def test_the_peek_returns_only_a_fresh_loaded_signer_and_never_reads(
    services: Services, tenant: TenantFixture
) -> None:
    identities = services.identities
    with sql_log(services.engine) as log:
        assert identities.cached_dkim_signer(tenant.id, "clinic.example") is None  # not loaded yet
    assert log.statements == []
    signer = identities.dkim_signer(tenant.id, "clinic.example")
    assert signer is not None
    with sql_log(services.engine) as log:
        assert identities.cached_dkim_signer(tenant.id, "Clinic.Example") is signer
    assert log.statements == []
    # A domain without keys: cached as "none", which the peek leaves to dkim_signer (a hold).
    assert identities.dkim_signer(tenant.id, "nokeys.example") is None
    assert identities.cached_dkim_signer(tenant.id, "nokeys.example") is None
