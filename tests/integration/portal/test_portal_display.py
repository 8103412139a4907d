"""What a patient sees cannot mislead (issue 11 §6, §7): names, downloads, headers, cookies.

Over real HTTP against the whole stack: a message with a right-to-left override in its
attachment name and a display name that is an address; a download whose MIME file name
is ``../../etc/passwd`` with NUL and RLO; the headers of the ``/p/{token}`` redirect; the
cookie names and flags of a portal whose URL is https.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import PATIENT, Stack, attachment, portal_stack, serve
from tests.integration.portal.test_portal_http import sign_in
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer

from sealmail.app import portal_options
from sealmail.files.http import filename_from_disposition
from sealmail.intake.portal_site import create_portal_app
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn

RLO = "\u202e"
SPOOF = '"ceo@hospital.test" <dr.smith@clinic.example>'
HOLD = re.compile(r"/p/m/(ptl_[A-Za-z0-9]+)")


@pytest.fixture
def stack(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with portal_stack(tmp_path, db_url, dns, ca, mx) as s:
        yield s


def send_raw_named(
    stack: Stack, sender: str, mime_filename: bytes, subject: str = f"Results{RLO}fdp.exe"
) -> str:
    """Send a message whose attachment's MIME file-name parameter is exactly ``mime_filename``
    (the API refuses a bidi control in a file name; mail from elsewhere can carry one)."""
    body = MessageIn.model_validate(
        {
            "from": sender,
            "to": [PATIENT],
            "subject": subject,
            "text": "See the attachment.",
            "stream": "phi",
            "attachments": [attachment("PLACEHOLDER.pdf", b"%PDF-1.4", "application/pdf")],
        }
    )
    sub = compose.from_message(body, "sealmail.test", 1000)
    assert b'filename="PLACEHOLDER.pdf"' in sub.raw
    raw = sub.raw.replace(b'filename="PLACEHOLDER.pdf"', mime_filename)
    result, _ = stack.services.messages.submit(stack.tenant.principal, dataclasses.replace(sub, raw=raw))
    return result.id


def test_message_page_isolates_names_and_shows_the_real_sender(stack: Stack) -> None:
    mid = send_raw_named(
        stack, SPOOF, b"filename*=UTF-8''invoice%E2%80%AEfdp.exe", subject=f"Lab {RLO}results"
    )
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = sign_in(stack, stack.notice_link(mid), client)
        assert page.status_code == 200
        assert RLO not in page.text
        assert "<bdi>invoicefdp.exe</bdi>" in page.text
        assert "<bdi>Lab results</bdi>" in page.text
        assert '<bdi class="sender-address">dr.smith@clinic.example</bdi>' in page.text
        assert "not the sender&#39;s address" in page.text
        hold = HOLD.search(str(page.url))
        assert hold
        download = client.get(f"/p/m/{hold.group(1)}/a/0")
        assert filename_from_disposition(download.headers["content-disposition"]) == "invoicefdp.exe"
        inbox = client.get("/p/inbox?all=1")
        assert RLO not in inbox.text and "<bdi>Lab results</bdi>" in inbox.text
        assert '<bdi class="sender-address">dr.smith@clinic.example</bdi>' in inbox.text


def test_a_look_alike_of_the_clinic_name_is_flagged(stack: Stack) -> None:
    mid = stack.send(**{"from": "Riverside Сlinic <dr.smith@clinic.example>"})  # Cyrillic Es
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = sign_in(stack, stack.notice_link(mid), client)
        assert "The name imitates Riverside Clinic" in page.text
        assert '<bdi class="sender-address">dr.smith@clinic.example</bdi>' in page.text


def test_download_name_from_hostile_mime_is_one_safe_base_name(stack: Stack) -> None:
    hostile = b"filename*=UTF-8''..%2F..%2Fetc%2Fpass%00wd%E2%80%AEfdp.exe"
    mid = send_raw_named(stack, "Dr Smith <dr.smith@clinic.example>", hostile)
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = sign_in(stack, stack.notice_link(mid), client)
        hold = HOLD.search(str(page.url))
        assert hold, page.text
        got = client.get(f"/p/m/{hold.group(1)}/a/0")
        header = got.headers["content-disposition"]
        assert filename_from_disposition(header) == "passwdfdp.exe"
        assert "%2F" not in header and "%00" not in header and "%E2%80%AE" not in header
        assert 'filename="passwdfdp.exe"' in header
        assert RLO not in page.text and "passwdfdp.exe" in page.text


def test_notice_link_redirect_carries_the_page_security_headers(stack: Stack) -> None:
    link = stack.notice_link(stack.send())
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        landing = client.get(urlsplit(link).path)
        assert landing.status_code == 303
        assert "default-src 'none'" in landing.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in landing.headers["content-security-policy"]
        assert landing.headers["x-frame-options"] == "DENY"
        assert landing.headers["x-content-type-options"] == "nosniff"
        assert landing.headers["referrer-policy"] == "same-origin"
        assert landing.headers["cache-control"] == "no-store"
        # A method the portal does not serve is answered by the framework: hardened too.
        assert "content-security-policy" in client.put("/p/inbox").headers


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_https_portal_sets_host_prefixed_secure_cookies(stack: Stack, mode: str) -> None:
    settings = stack.settings.model_copy(
        update={"portal_base_url": "https://portal.clinic.example", "portal_cookie_secure_mode": mode}
    )
    assert settings.portal_cookie_secure
    link = stack.notice_link(stack.send())
    site = FastAPI()
    site.mount("/p", create_portal_app(stack.services, portal_options(settings)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    with (
        serve(site, sock),
        httpx.Client(
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", verify=default_context()
        ) as client,
    ):
        landing = client.get(urlsplit(link).path)
    cookie = landing.headers["set-cookie"]
    assert cookie.startswith("__Host-sealmail_signin=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "path=/", "samesite=strict"} <= flags
    assert not any(flag.startswith("domain") for flag in flags)
    assert "content-security-policy" in landing.headers


def test_plain_http_dev_portal_keeps_plain_cookie_names(stack: Stack) -> None:
    link = stack.notice_link(stack.send())
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        landing = client.get(urlsplit(link).path)
    assert landing.headers["set-cookie"].startswith("sealmail_signin=")
