"""Signatures agree with the reference ``standardwebhooks`` library."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from sealmail.webhooks import signing


def test_new_secrets_are_whsec_base64_of_32_random_bytes() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a[6:])) == 32


def test_signature_matches_the_reference_implementation() -> None:
    secret, ts, body = signing.new_secret(), 1717232410, b'{"type":"message.delivered"}'
    ours = signing.sign(secret, "evt_1", ts, body)
    theirs = Webhook(secret).sign("evt_1", datetime.fromtimestamp(ts, UTC), body.decode())
    assert ours == theirs


def test_headers_carry_one_signature_per_secret_and_verify_with_each() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    body = b'{"a":1}'
    headers = signing.headers([new, old], "evt_1", int(time.time()), body)
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        Webhook(secret).verify(body, dict(headers))


@pytest.mark.parametrize("bad", ["secret", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()])
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        signing.secret_key(bad)
