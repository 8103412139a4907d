"""Engagement end to end: RFC 8058 headers signed by DKIM, one-click unsubscribe exactly as
Gmail posts it, opt-in open/click tracking, the preference page and webhooks."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import dkim as dkimpy
import dns.nameserver as dns_nameserver
import dns.resolver as dns_resolver
import pytest
from standardwebhooks import Webhook
from tests.integration.engagement.conftest import TARGET, Stack, header, html_of, links, path_of
from tests.integration.webhooks.receiver import Receiver
from tests.support.dns_server import DnsServer

from sealmail.app import build_webhook_dispatcher
from sealmail.store import db
from sealmail.suppressions import service as suppressions
from sealmail.webhooks.endpoints import EndpointSpec, WebhookEndpoints

GMAIL = {"Content-Type": "application/x-www-form-urlencoded"}
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
GOOGLE_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _suppressed(stack: Stack, stream: str, address: str) -> bool:
    with db.reader(stack.services.engine) as conn:
        return bool(suppressions.suppressed(conn, stack.tenant.id, stream, [address]))


def _unsubscribe_path(stack: Stack, m: object) -> str:
    value = header(m, "List-Unsubscribe")  # type: ignore[arg-type]
    assert value is not None
    hit = re.fullmatch(r"<(.+)>", value)
    assert hit, value
    return path_of(hit.group(1), stack.base_url)


def test_broadcast_carries_dkim_signed_one_click_headers_and_gmails_post_unsubscribes(
    stack: Stack, dns: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = stack.send(["pat@example.net"])
    [m] = stack.deliver(mid, 1)

    assert header(m, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    path = _unsubscribe_path(stack, m)
    assert path.startswith("/u/") and "pat" not in path
    # RFC 8058 §3: both fields must be covered by a valid DKIM signature.
    resolver = dns_resolver.Resolver(configure=False)
    resolver.nameservers = [dns_nameserver.Do53Nameserver(*dns.address)]
    monkeypatch.setattr(dns_resolver, "default_resolver", resolver)
    assert dkimpy.verify(m.data), "DKIM signature does not verify"
    signed = re.search(rb"\bh=([^;]+);", m.data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b""))
    assert signed is not None
    names = [n.strip().lower() for n in signed.group(1).replace(b" ", b"").split(b":")]
    assert b"list-unsubscribe" in names and b"list-unsubscribe-post" in names
    # Not opted in to tracking: the HTML goes out as written.
    html = html_of(m)
    assert TARGET.replace("&", "&amp;") in html and "/t/o/" not in html and "/t/c/" not in html

    with stack.client() as client:
        # Exactly what Gmail sends: a bare form POST, no cookie, no authorization.
        first = client.post(path, content=b"List-Unsubscribe=One-Click", headers=GMAIL)
        assert first.status_code == 200
        assert "set-cookie" not in first.headers
        assert _suppressed(stack, "broadcast", "pat@example.net")
        assert not _suppressed(stack, "transactional", "pat@example.net")
        second = client.post(path, content=b"List-Unsubscribe=One-Click", headers=GMAIL)
        assert second.status_code == 200
        [event] = stack.events(mid, "recipient.unsubscribed")
        assert event["data"] == {"stream": "broadcast", "source": "one_click"}

        # Wrong body: a problem, nothing more happens.
        bad = client.post(path, content=b"unsubscribe=yes", headers=GMAIL)
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        # A tampered token is unknown.
        tampered = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
        assert client.post(tampered, content=b"List-Unsubscribe=One-Click", headers=GMAIL).status_code == 404
    assert len(stack.events(mid, "recipient.unsubscribed")) == 1

    # The next broadcast to the address is rejected at intake.
    later = stack.send(["pat@example.net"])
    assert [e["data"]["reason"] for e in stack.events(later, "message.rejected")] == ["suppressed"]


def _opt_in(stack: Stack, **tracking: object) -> None:
    stack.services.tenancy.update_settings(stack.tenant.id, {"tracking": tracking}, actor="test")


def test_opted_in_tracking_records_opens_and_clicks_and_never_touches_phi(
    stack: Stack, receiver: Receiver
) -> None:
    _opt_in(stack, opens=True, clicks=True)
    endpoints = WebhookEndpoints(stack.services.engine, stack.services.keyring, allow_insecure_http=True)
    _, secret = endpoints.create(
        stack.tenant.id,
        EndpointSpec(
            receiver.url,
            event_types=["message.opened", "message.clicked"],
            payload="full",
        ),
        actor="test",
    )
    mid = stack.send(["pat@example.net", "sam@example.net"], stream="transactional")
    copies = {m.rcpt_tos[0]: m for m in stack.deliver(mid, 2)}
    pat_html = html_of(copies["pat@example.net"])
    [pixel] = links(pat_html, "o", stack.base_url)
    [click] = links(pat_html, "c", stack.base_url)
    assert "mailto:front@clinic.example" in pat_html
    assert "clinic.example/news" not in pat_html  # the URL itself is sealed in the database
    assert header(copies["pat@example.net"], "List-Unsubscribe") is None  # not broadcast
    [sam_pixel] = links(html_of(copies["sam@example.net"]), "o", stack.base_url)
    assert sam_pixel != pixel

    phi = stack.send(["pat@example.net"], stream="phi")
    [phi_copy] = stack.deliver(phi, 1)
    assert "/t/o/" not in html_of(phi_copy) and "/t/c/" not in html_of(phi_copy)

    stack.delivered_long_ago()
    with stack.client() as client:
        got = client.get(pixel, headers={"User-Agent": FIREFOX})
        assert got.status_code == 200 and got.headers["content-type"] == "image/gif"
        assert got.headers["cache-control"].startswith("no-store")
        assert client.get(pixel, headers={"User-Agent": FIREFOX}).status_code == 200  # bounded
        assert client.get(sam_pixel, headers={"User-Agent": GOOGLE_PROXY}).status_code == 200
        # An unknown pixel looks the same.
        assert client.get("/t/o/" + "A" * 60).status_code == 200

        clicked = client.get(click, headers={"User-Agent": FIREFOX})
        assert clicked.status_code == 302
        assert clicked.headers["location"] == TARGET
        tampered = click[:-1] + ("A" if click[-1] != "A" else "B")
        assert client.get(tampered).status_code == 404
        assert client.get("/t/c/" + pixel.rsplit("/", 1)[1]).status_code == 404  # an open token

    opens = {e["recipient"]: e["data"] for e in stack.events(mid, "message.opened")}
    assert opens == {
        "pat@example.net": {"machine_open": False, "user_agent_class": "browser", "signals": []},
        "sam@example.net": {"machine_open": True, "user_agent_class": "google_proxy", "signals": ["proxy"]},
    }
    [c] = stack.events(mid, "message.clicked")
    assert c["data"]["link"] == 0 and c["data"]["host"] == "clinic.example"
    assert c["data"]["bot_suspected"] is False
    assert "news?id" not in json.dumps(c["data"])

    assert asyncio.run(build_webhook_dispatcher(stack.services).dispatch_once()) == 3
    delivered = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert sorted(d["type"] for d in delivered) == ["message.clicked", "message.opened", "message.opened"]
    machine = {
        d["data"]["recipient"]: d["data"].get("machine_open")
        for d in delivered
        if d["type"] == "message.opened"
    }
    assert machine == {"pat@example.net": False, "sam@example.net": True}


def test_an_open_within_seconds_of_delivery_or_by_head_is_flagged_machine(stack: Stack) -> None:
    _opt_in(stack, opens=True)
    mid = stack.send(["pat@example.net"], stream="broadcast")
    [m] = stack.deliver(mid, 1)
    [pixel] = links(html_of(m), "o", stack.base_url)
    assert links(html_of(m), "c", stack.base_url) == []  # clicks not opted in
    with stack.client() as client:
        assert client.head(pixel, headers={"User-Agent": FIREFOX}).status_code == 200
    [e] = stack.events(mid, "message.opened")
    assert e["data"]["machine_open"] is True
    assert set(e["data"]["signals"]) == {"head", "fast"}


def test_preference_page_unsubscribes_and_resubscribes_with_csrf(stack: Stack) -> None:
    mid = stack.send(["pat@example.net"])
    [m] = stack.deliver(mid, 1)
    path = _unsubscribe_path(stack, m)
    with stack.client() as client:
        page = client.get(path)
        assert page.status_code == 200
        assert "You are subscribed." in page.text and "p•••@example.net" in page.text
        assert "pat@example.net" not in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "set-cookie" not in page.headers
        # A GET never unsubscribes (link scanners fetch every GET).
        assert not _suppressed(stack, "broadcast", "pat@example.net")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf is not None

        forged = client.post(f"{path}/preferences", data={"action": "unsubscribe", "csrf": "0" * 64})
        assert forged.status_code == 403
        cross_site = client.post(
            f"{path}/preferences",
            data={"action": "unsubscribe", "csrf": csrf.group(1)},
            headers={"Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
        # An action the page never offers is the page's own 400, not a JSON problem.
        odd = client.post(f"{path}/preferences", data={"action": "<b>both</b>", "csrf": csrf.group(1)})
        assert odd.status_code == 400 and odd.headers["content-type"].startswith("text/html")
        assert "<b>" not in odd.text
        assert not _suppressed(stack, "broadcast", "pat@example.net")

        done = client.post(f"{path}/preferences", data={"action": "unsubscribe", "csrf": csrf.group(1)})
        assert done.status_code == 303
        assert _suppressed(stack, "broadcast", "pat@example.net")
        assert "You are unsubscribed" in client.get(path).text
        again = client.post(f"{path}/preferences", data={"action": "resubscribe", "csrf": csrf.group(1)})
        assert again.status_code == 303
        assert not _suppressed(stack, "broadcast", "pat@example.net")
        assert "You are subscribed." in client.get(path).text
        assert client.get(path[:-3] + "xyz").status_code == 404
    [u] = stack.events(mid, "recipient.unsubscribed")
    assert u["data"] == {"stream": "broadcast", "source": "preference_page"}
    assert len(stack.events(mid, "recipient.resubscribed")) == 1


def test_resubscribe_cannot_clear_an_administrators_entry(stack: Stack) -> None:
    mid = stack.send(["pat@example.net"])
    [m] = stack.deliver(mid, 1)
    path = _unsubscribe_path(stack, m)
    suppressions.Suppressions(stack.services.engine).add(
        stack.tenant.id, address="pat@example.net", stream="broadcast", actor="test", source="api"
    )
    with stack.client() as client:
        page = client.get(path)
        assert "does not receive" in page.text and "<form" not in page.text
        csrf = stack_csrf(stack, path)
        client.post(f"{path}/preferences", data={"action": "resubscribe", "csrf": csrf})
    assert _suppressed(stack, "broadcast", "pat@example.net")
    assert stack.events(mid, "recipient.resubscribed") == []


def stack_csrf(stack: Stack, path: str) -> str:
    from sealmail.app import build_engagement

    return build_engagement(stack.services, stack.settings).csrf(path.rsplit("/", 1)[1])


def test_tenant_tracking_setting_is_validated_and_off_for_phi_unless_listed(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.tenant.api_key}"}
    with stack.client() as client:
        bad = client.patch("/v1/tenant/settings", json={"tracking": {"streams": ["marketing"]}}, headers=auth)
        assert bad.status_code in (400, 422)
        assert bad.headers["content-type"] == "application/problem+json"
        assert client.patch(
            "/v1/tenant/settings", json={"tracking": {"opens": "maybe"}}, headers=auth
        ).status_code in (400, 422)
        ok = client.patch(
            "/v1/tenant/settings", json={"tracking": {"opens": True, "streams": ["phi", "phi"]}}, headers=auth
        )
        assert ok.status_code == 200
        assert ok.json()["settings"]["tracking"] == {"opens": True, "clicks": False, "streams": ["phi"]}
