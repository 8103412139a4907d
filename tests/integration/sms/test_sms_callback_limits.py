"""Hammering the SMS provider's callbacks (``/sms/twilio/status`` and ``/sms/twilio/inbound``) from
one address gets 429 problem+json with ``Retry-After`` once the per-address window is spent —
counted before the signature is checked, so forged floods cost a counter — on SQLite and
PostgreSQL; another address (the provider's real callbacks) and the portal are unaffected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from tests.integration.portal.portal_harness import portal_site
from tests.integration.sms.conftest import twilio_site
from tests.support.twilio_server import TwilioServer

from sealmail.app import Services

LIMIT = 4
FORGED = "bm90IGEgc2lnbmF0dXJl"


@pytest.fixture
def site(tmp_path: Path, db_url: str, twilio: TwilioServer) -> Iterator[tuple[str, Services]]:
    sock, base, settings = twilio_site(tmp_path, db_url, twilio, sms_callback_rate_limit_per_minute=LIMIT)
    with portal_site(settings, sock) as services:
        yield base, services


def client_at(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def post(c: httpx.Client, url: str, params: dict[str, str], signature: str) -> httpx.Response:
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return c.post(url, content=urlencode(params), headers=headers)


def test_forged_callbacks_from_one_address_get_429_and_the_provider_still_gets_through(
    site: tuple[str, Services], twilio: TwilioServer
) -> None:
    base, _ = site
    status_url, inbound_url = f"{base}/sms/twilio/status", f"{base}/sms/twilio/inbound"
    params = {"MessageSid": "SMnone", "MessageStatus": "delivered", "AccountSid": twilio.account_sid}
    with client_at("127.0.0.1") as attacker:
        answers = [post(attacker, status_url, params, FORGED) for _ in range(LIMIT + 3)]
        # The route's own answer first (a forged signature is refused) …
        assert [r.status_code for r in answers[:LIMIT]] == [403] * LIMIT
        # … then the limit, before the signature is even looked at.
        for refused in answers[LIMIT:]:
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert refused.headers["ratelimit-policy"] == f'"sms-callbacks";q={LIMIT};w=60'
            assert refused.json()["status"] == 429
        # The window is the address's across both callbacks: the inbound route is refused too,
        # even correctly signed.
        inbound = {"From": "+14155550123", "To": "+14155550100", "Body": "HELLO", "MessageSid": "SMin"}
        signed = post(attacker, inbound_url, inbound, twilio.sign(inbound_url, inbound))
        assert signed.status_code == 429
        # The portal, counted under its own policy, still answers this address.
        assert attacker.get(f"{base}/p/not-a-token").status_code != 429
    # The provider calling from its own address is counted on its own: a signed receipt lands.
    with client_at("127.0.0.2") as provider:
        ok = post(provider, status_url, params, twilio.sign(status_url, params))
        assert ok.status_code == 204, ok.text
        assert ok.headers["ratelimit"].startswith(f'"sms-callbacks";r={LIMIT - 1};')


def test_oversized_and_garbage_callbacks_are_refused_and_counted(site: tuple[str, Services]) -> None:
    base, _ = site
    url = f"{base}/sms/twilio/status"
    with client_at("127.0.0.3") as c:
        bodies = [b"\xff\xfe\x00garbage", b"a=" + b"x" * 20_000, b"%%%=&&&", b""]
        answers = [
            c.post(url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            for body in bodies
        ]
        assert [r.status_code for r in answers] == [403] * LIMIT  # never a 500
        assert c.post(url, content=b"MessageSid=x").status_code == 429


def test_a_form_the_parser_refuses_is_a_400_problem_before_the_signature(site: tuple[str, Services]) -> None:
    # FastAPI's bare {"detail": ...} JSON was the answer: the callbacks had no problem handlers.
    base, _ = site
    fields = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(101)
    )
    cases = [
        ("multipart/form-data; boundary=b", fields + b"--b--\r\n"),
        ("multipart/form-data", b"no boundary"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nv\r\n--b--\r\n',
        ),
    ]
    with client_at("127.0.0.4") as c:
        for ctype, body in cases:
            r = c.post(f"{base}/sms/twilio/inbound", content=body, headers={"Content-Type": ctype})
            assert r.status_code == 400, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == 400
