"""``Identities.cached_dkim_signer``: SecureLine's check on the event loop, with no I/O (issue 18)."""

from __future__ import annotations

import pytest
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


def test_the_openpgp_keys_peek_answers_only_what_is_loaded_and_never_reads(
    services: Services, tenant: TenantFixture
) -> None:
    """``cached_pgp_keys`` (asked on the loop per PGP/MIME message): the archive certificate
    and the sender's signing key once both are loaded, else None ("ask ``pgp_keys``")."""
    identities = services.identities
    with sql_log(services.engine) as log:
        assert identities.cached_pgp_keys(tenant.id, None) is None
        assert identities.cached_pgp_keys(tenant.id, "dr@clinic.example") is None
    assert log.statements == []
    archive, signer = identities.pgp_keys(tenant.id, None)
    assert signer is None
    with sql_log(services.engine) as log:
        assert identities.cached_pgp_keys(tenant.id, None) == (archive, None)
        assert identities.cached_pgp_keys(tenant.id, "dr@clinic.example") is None  # signer not loaded
    assert log.statements == []
    signer = identities.pgp_signer(tenant.id, "dr@clinic.example")
    assert identities.pgp_keys(tenant.id, "dr@clinic.example") == (archive, signer)
    with sql_log(services.engine) as log:
        assert identities.cached_pgp_keys(tenant.id, "DR@clinic.example ") == (archive, signer)
    assert log.statements == []
    # A new signing key for the address (this process) is not answered from the old one.
    identities.create_pgp_signing_key(tenant.id, "dr@clinic.example", "test")
    assert identities.cached_pgp_keys(tenant.id, "dr@clinic.example") is None


def test_dkim_keys_are_found_by_their_exact_domain_not_a_pattern(
    services: Services, tenant: TenantFixture
) -> None:
    """``_`` and ``%`` in a domain asked for are characters, not LIKE wildcards."""
    identities = services.identities
    identities.create_dkim_keys(tenant.id, "abc.example", actor="test")
    assert len(identities.dkim_keys(tenant.id, "abc.example")) == 2
    assert identities.dkim_keys(tenant.id, "a_c.example") == []
    assert identities.dkim_keys(tenant.id, "%.example") == []
    # Nor can keys be made for such a name (validated before any pattern is built).
    with pytest.raises(ValueError, match="A-label"):
        identities.create_dkim_keys(tenant.id, "a_c.example", actor="test")
    assert len(identities.dkim_keys(tenant.id, "abc.example")) == 2
