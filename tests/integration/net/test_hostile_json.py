"""JSON from the outside world, nested past Python's recursion limit (a "JSON bomb").

``json.loads`` raises ``RecursionError`` for it, which is no ``ValueError``: a parser that
only catches the latter lets a kilobyte of ``[`` escape as a crash.  Every outbound fetch that
reads JSON (the OIDC provider's discovery document, JWKS, token answer and ID token claims) must turn it into
its own error, like any other unreadable answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from joserfc import jws
from tests.support.ca import TestCA
from tests.support.https_server import HttpsServer
from tests.support.oidc_provider import new_key

from sealmail.net.http_client import SafeHttpClient, SafeResponse
from sealmail.users.oidc import OidcClient, OidcError, Provider

pytestmark = pytest.mark.timeout(30)

OP = "op.example.org"
ISSUER = f"https://{OP}"
BOMB = "[" * 100_000  # 100 KB: under every size cap


@pytest.fixture(scope="module")
def ca() -> Iterator[TestCA]:
    with TestCA() as test_ca:
        yield test_ca


@pytest.fixture
def op(ca: TestCA) -> Iterator[HttpsServer]:
    with HttpsServer(ca.issue(OP)) as server:
        yield server


def client(ca: TestCA, op: HttpsServer) -> OidcClient:
    http = SafeHttpClient(None, allow_loopback=True, ca_file=ca.ca_file, host_overrides={OP: op.address})
    return OidcClient(http)


def test_a_response_nested_too_deep_is_a_value_error_like_any_bad_json() -> None:
    # The one reader callers use (OIDC, the SMS provider's answers): they catch ValueError.
    with pytest.raises(ValueError, match="nested too deeply"):
        SafeResponse(200, {}, BOMB.encode(), "https://example.org/").json()


def test_a_discovery_document_nested_too_deep_is_an_oidc_error(ca: TestCA, op: HttpsServer) -> None:
    op.set_text("/.well-known/openid-configuration", BOMB, content_type="application/json")

    with pytest.raises(OidcError, match="other than JSON"):
        asyncio.run(client(ca, op).provider(ISSUER))


def test_a_signed_id_token_whose_claims_are_nested_too_deep_is_an_oidc_error(
    ca: TestCA, op: HttpsServer
) -> None:
    # The header is capped at 512 bytes by joserfc, the claims are not (128 KB): an OP (which
    # a tenant configures) signs a body of "[" and the relying party must still answer.
    key = new_key("k1")
    op.set_text("/jwks", json.dumps({"keys": [key.as_dict(private=False)]}), content_type="application/json")
    provider = Provider(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", f"{ISSUER}/jwks")
    token = jws.serialize_compact({"alg": "RS256", "kid": "k1"}, b"[" * 5000, key)

    with pytest.raises(OidcError, match="malformed"):
        asyncio.run(client(ca, op).verify(provider, token, "sealmail", "nonce", datetime.now(UTC)))
