"""The portal in headless Chromium, end to end through the real pipeline.

Notice at the patient's loopback MX → link → code mail → sign in → read → download →
reply (reaches the clinic's MX over TLS) → print; recalled and expired pages; code
brute force locks out; XSS payloads in the HTML body never run.  Screenshots of the main
pages at phone and desktop widths go to ``$SEALMAIL_SCREENSHOT_DIR``
(default ``test-artifacts/screenshots``).
"""

from __future__ import annotations

import http.server
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.integration.portal.portal_harness import PATIENT, Stack, attachment
from tests.support.waiting import wait_until

from sealmail.store.tables import audit_log

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make system-deps)"
    ),
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


class Canary:
    """A loopback HTTP server that records every path requested: proof of what a page fetched."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

            def log_message(self, *args: Any) -> None:
                return

        self.hits = hits
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Canary:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def xss_body(canary: str) -> str:
    """Payloads that, if any ran, would log, alert, set a global or fetch the canary."""
    run = "console.log('PWNED');alert('PWNED');window.__pwned=1;top.__pwned=1;fetch('" + canary + "/xss')"
    return (
        "<p>Dear patient, <b>your results</b> are attached.</p>"
        f"<script>{run}</script>"
        f'<img src="x" onerror="{run}">'
        f'<a id="js" href="javascript:{run}">click me</a>'
        f'<svg onload="{run}"><script>{run}</script></svg>'
        f'<div style="width:expression({run});background:url({canary}/css-bg)">styled</div>'
        f'<iframe src="javascript:{run}"></iframe>'
        f'<body onload="{run}"></body><details open ontoggle="{run}">x</details>'
        f'<form action="{canary}/form"><input name=q autofocus onfocus="{run}"></form>'
        f'<img src="{canary}/pixel.gif" alt="logo">'
        f'<math><mtext><table><mglyph><style><img src=x onerror="{run}">'
        "</style></mglyph></table></mtext></math>"
    )


@pytest.fixture(scope="session")
def shots() -> Path:
    target = Path(os.environ.get("SEALMAIL_SCREENSHOT_DIR", "test-artifacts/screenshots"))
    target.mkdir(parents=True, exist_ok=True)
    return target


def snap(page: Any, shots: Path, name: str) -> None:
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(shots / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def request_and_enter_code(stack: Stack, page: Any, code: str | None = None) -> str:
    before = len(stack.code_mails())
    page.get_by_role("button", name="Email me a code").click()
    page.get_by_label("6-digit code from the email").wait_for()
    real = stack.latest_code(before)
    page.get_by_label("6-digit code from the email").fill(code or real)
    page.get_by_role("button", name="Sign in").click()
    return real


def test_patient_reads_downloads_and_replies_and_no_script_ever_runs(
    stack: Stack, browser: Any, shots: Path, tmp_path: Path
) -> None:
    pdf = b"%PDF-1.4\n" + os.urandom(50_000) + b"\n%%EOF\n"
    with Canary() as canary:
        mid = stack.send(
            html=xss_body(canary.url),
            text="Dear patient, your results are attached.",
            attachments=[attachment("results.pdf", pdf, "application/pdf")],
        )
        link = stack.notice_link(mid)
        context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
        page = context.new_page()
        dialogs: list[str] = []
        console: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: console.append(m.text))

        page.goto(link)
        assert "/p/signin" in page.url and "/p/" + link.rsplit("/", 1)[1] not in page.url
        snap(page, shots, "01-signin")
        request_and_enter_code(stack, page)
        page.get_by_role("heading", name="Your lab results from March").wait_for()
        assert "lab results" not in page.title().lower()  # no PHI in titles
        frame_el = page.locator("iframe.body")
        frame = frame_el.content_frame
        frame.get_by_text("your results").wait_for()
        snap(page, shots, "02-message")

        # No payload ran: no dialog, no console output of ours, no global, no canary hit
        # except none at all (remote images are blocked until asked for).
        frame.locator("a", has_text="click me").click()  # its javascript: href was removed
        assert dialogs == []
        assert not any("PWNED" in line for line in console)
        assert page.evaluate("window.__pwned") is None
        assert "/xss" not in canary.hits and "/css-bg" not in canary.hits
        assert canary.hits == []

        # Remote pictures load only after the reader asks.
        page.get_by_role("link", name="Show pictures").click()
        page.locator("iframe.body").content_frame.get_by_text("your results").wait_for()
        wait_until(lambda: "/pixel.gif" in canary.hits, 5, "the picture was not loaded on request")
        assert "/xss" not in canary.hits and dialogs == []
        assert not any("PWNED" in line for line in console)

        # The attachment downloads intact, as an attachment.
        with page.expect_download() as got:
            page.get_by_role("link", name="results.pdf").click()
        download = got.value
        assert download.suggested_filename == "results.pdf"
        assert Path(download.path()).read_bytes() == pdf

        # Print view.
        page.get_by_role("link", name="Print view").click()
        page.get_by_role("heading", name="Your lab results from March").wait_for()
        snap(page, shots, "03-print")
        page.go_back()

        # Secure reply with an attachment; it is shown in the thread and reaches the clinic.
        upload = tmp_path / "insurance-card.png"
        upload.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
        page.get_by_label("Your message").fill("Thank you. Is the dose the same?")
        page.get_by_label("Attach files (optional)").set_input_files(str(upload))
        page.get_by_role("button", name="Send reply").click()
        page.get_by_text("Your reply was sent securely.").wait_for()
        page.get_by_text("Thank you. Is the dose the same?").wait_for()
        snap(page, shots, "04-replied")
        stack.run_worker()
        [reply] = stack.clinic_sink.wait_for(1, timeout=10)
        assert reply.tls, "the reply must travel encrypted"
        assert reply.rcpt_tos == ("dr.smith@clinic.example",)
        assert f"Reply-To: {PATIENT}".encode() in reply.data
        assert b"insurance-card.png" in reply.data

        # Sign out.
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("heading", name="You are signed out").wait_for()
        context.close()
    types = {
        e["type"] for e in stack.services.messages.list_events(stack.tenant.principal, message_id=mid).data
    }
    assert {"portal.viewed", "portal.attachment_downloaded", "portal.replied"} <= types


def test_recalled_and_expired_messages_show_their_pages(stack: Stack, browser: Any, shots: Path) -> None:
    recalled = stack.send(subject="Referral letter")
    expired = stack.send(subject="Vaccination record")
    recalled_link = stack.notice_link(recalled)
    expired_link = stack.notice_link(expired)
    with stack.api() as api:
        assert api.post(f"/v1/messages/{recalled}/recall").status_code == 200
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        assert api.patch(f"/v1/messages/{expired}/portal", json={"expires_at": past}).status_code == 200
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(recalled_link)
    page.get_by_role("heading", name="The sender withdrew this message").wait_for()
    snap(page, shots, "05-recalled")
    page.goto(expired_link)
    page.get_by_role("heading", name="This secure message has expired").wait_for()
    snap(page, shots, "06-expired")
    page.goto(stack.base_url + "/p/" + "A" * 43)
    page.get_by_role("heading", name="This link does not work").wait_for()
    context.close()


def test_guessing_codes_locks_the_address_out_even_for_the_right_code(
    stack: Stack, browser: Any, shots: Path
) -> None:
    link = stack.notice_link(stack.send())
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(link)
    before = len(stack.code_mails())
    page.get_by_role("button", name="Email me a code").click()
    real = stack.latest_code(before)
    wrong = "111111" if real != "111111" else "222222"
    box = page.get_by_label("6-digit code from the email")
    for attempt in range(5):
        box.fill(wrong)
        page.get_by_role("button", name="Sign in").click()
        if attempt < 4:
            page.get_by_role("alert").filter(has_text="not right").wait_for()
    page.get_by_role("heading", name="Sign-in is paused").wait_for()
    snap(page, shots, "07-locked")
    # Opening the link again does not reset the lock, and the real code is refused.
    page.goto(link)
    page.get_by_role("heading", name="Sign-in is paused").wait_for()
    context.close()
    with stack.services.engine.connect() as conn:
        actions = list(conn.execute(sa.select(audit_log.c.action)).scalars())
    assert actions.count("portal:sign_in_failed") == 5
    assert actions.count("portal:locked_out") == 1
