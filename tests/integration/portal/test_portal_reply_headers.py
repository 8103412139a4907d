"""A portal reply's headers come from text nobody checked for header use: the original's
decoded subject (an RFC 2047 encoded-word can carry any character) and the Content-Type a
reader's browser gave an uploaded file.  A line break in either made building the reply
raise (a 500, and the reader could not answer at all); now the subject's breaks become
spaces and an unusable type becomes ``application/octet-stream``."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import PATIENT, Stack, portal_stack
from tests.integration.portal.test_portal_http import _csrf, sign_in
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer

from sealmail.messages import compose
from sealmail.messages.schemas import RawMessageIn


@pytest.fixture
def stack(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with portal_stack(tmp_path, db_url, dns, ca, mx) as s:
        yield s


def send_raw(stack: Stack, subject: str) -> str:
    encoded = "=?utf-8?b?" + base64.b64encode(subject.encode()).decode() + "?="
    raw = (
        f"From: Dr Smith <dr.smith@clinic.example>\r\nTo: {PATIENT}\r\nSubject: {encoded}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nYour results are in.\r\n"
    ).encode()
    body = RawMessageIn.model_validate(
        {
            "envelope": {"mail_from": "dr.smith@clinic.example", "rcpt_to": [PATIENT]},
            "message": base64.b64encode(raw).decode(),
            "stream": "phi",
        }
    )
    result, _ = stack.services.messages.submit(
        stack.tenant.principal, compose.from_raw(body, "sealmail.test", 10)
    )
    return result.id


def test_a_reply_is_built_whatever_the_original_subject_and_the_uploaded_type_hold(stack: Stack) -> None:
    mid = send_raw(stack, "Results\r\nBcc: someone@evil.example\u2028X-Injected: yes")
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = sign_in(stack, stack.notice_link(mid), client)
        hold = re.search(r"/p/m/(ptl_[A-Za-z0-9]+)", str(page.url))
        assert hold
        reply = client.post(
            f"/p/m/{hold.group(1)}/reply",
            data={"csrf": _csrf(page), "body": "A question."},
            files={"files": ("q.txt", b"A question", "text/plain\x0bX-Injected: yes")},
            follow_redirects=True,
        )
        assert reply.status_code == 200, reply.text[:300]
        assert "Your reply was sent securely" in reply.text
    stack.run_worker()
    [received] = stack.clinic_sink.wait_for(1)
    sent = email.message_from_bytes(received.data, policy=email.policy.default)
    assert "X-Injected" not in sent and "Bcc" not in sent
    assert sent["Subject"] == "Re: Results Bcc: someone@evil.example X-Injected: yes"
    [part] = list(sent.iter_attachments())
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_content() == b"A question"
