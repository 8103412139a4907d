"""The keyring keeps each tenant key's AES-GCM context for wrapping data keys: what it seals
opens as before, and a forgotten (retired) key's context goes with the key."""

from __future__ import annotations

from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.crypto import vault


def test_sealed_content_opens_and_the_wrap_is_under_the_tenant_key(
    services: Services, tenant: TenantFixture
) -> None:
    keyring = services.keyring
    sealed = [keyring.seal(tenant.id, f"msg_{i}", f"body {i}".encode()) for i in range(2)]
    for i, (key_id, wrapped, blob) in enumerate(sealed):
        assert keyring.open(tenant.id, f"msg_{i}", key_id, wrapped, blob) == f"body {i}".encode()
        # The wrap is the same format ``vault.seal`` writes: it opens with the raw tenant key.
        tenant_key = keyring.tenant_key(tenant.id, key_id)
        data_key = vault.open_sealed(tenant_key, wrapped, vault.data_key_aad(tenant.id, f"msg_{i}"))
        assert (
            vault.open_sealed(data_key, blob, vault.content_aad(tenant.id, f"msg_{i}"))
            == f"body {i}".encode()
        )
    assert sealed[0][1] != sealed[1][1]  # a fresh data key and nonce each time


def test_forgetting_a_key_drops_its_context(services: Services, tenant: TenantFixture) -> None:
    keyring = services.keyring
    key_id, _, _ = keyring.seal(tenant.id, "msg_1", b"x")
    assert key_id in keyring._sealers
    keyring.forget([key_id])
    assert key_id not in keyring._sealers
