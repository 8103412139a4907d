"""HTML instrumentation on real MIME: encodings, nesting, and what must stay untouched."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage, Message

from sealmail.engagement.instrument import drop_fields, instrument, rewrite_html

BASE = "https://mail.example.org"
HTML = (
    "<html><body><p>Hello Pat,</p>\n"
    '<a href="https://clinic.example/portal?appt=42&amp;x=1">Your appointment</a>\n'
    "<a class=\"btn\" href='https://survey.example/s'>Survey</a>\n"
    '<a href="mailto:front@clinic.example">Mail us</a> <a href="tel:+15551234">Call</a>\n'
    '<a href="#top">Top</a> <a href="/relative">Relative</a>\n'
    f'<a href="{BASE}/u/TOKEN">Unsubscribe</a>\n'
    '<a data-sealmail-notrack href="https://private.example/">Not tracked</a>\n'
    '<!-- <a href="https://comment.example/">in a comment</a> -->\n'
    '<a title=" href=https://fake.example/" href="https://clinic.example/portal?appt=42&amp;x=1">Again</a>\n'
    "</body></html>\n"
)


def _track(i: int) -> str:
    return f"{BASE}/t/c/L{i}"


def _keep(url: str) -> bool:
    return url.startswith(BASE + "/u/")


def _html_of(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def _alternative(cte: str = "quoted-printable") -> bytes:
    msg = EmailMessage()
    msg["From"] = "clinic@clinic.example"
    msg["To"] = "pat@example.net"
    msg["Subject"] = "Newsletter"
    msg.set_content("Plain text https://clinic.example/portal?appt=42\n", cte=cte)
    msg.add_alternative(HTML, subtype="html", cte=cte)
    return msg.as_bytes(policy=policy.SMTP)


def test_links_are_rewritten_and_pixel_added_in_quoted_printable_alternative() -> None:
    result = instrument(_alternative(), track_link=_track, pixel_url=f"{BASE}/t/o/P", keep=_keep)
    assert result.changed
    # &amp; is the HTML spelling: the stored URL is the one a browser would follow.
    assert result.urls == ["https://clinic.example/portal?appt=42&x=1", "https://survey.example/s"]
    html = _html_of(result.raw)
    assert f'href="{BASE}/t/c/L0">Your appointment' in html
    assert f'class="btn" href="{BASE}/t/c/L1">Survey' in html
    # The same URL twice shares its number; the decoy in the title attribute is kept.
    assert f'title=" href=https://fake.example/" href="{BASE}/t/c/L0">Again' in html
    for untouched in (
        'href="mailto:front@clinic.example"',
        'href="tel:+15551234"',
        'href="#top"',
        'href="/relative"',
        f'href="{BASE}/u/TOKEN"',
        'href="https://private.example/"',
        '<a href="https://comment.example/">in a comment</a>',
    ):
        assert untouched in html
    assert html.index(f'<img src="{BASE}/t/o/P"') < html.index("</body>")
    # text/plain is left alone.
    msg = email.message_from_bytes(result.raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None and "https://clinic.example/portal?appt=42" in text.get_content()


def test_base64_html_stays_base64_and_decodes_to_the_rewritten_document() -> None:
    result = instrument(_alternative("base64"), track_link=_track, pixel_url=None, keep=_keep)
    msg = email.message_from_bytes(result.raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None and html_part["Content-Transfer-Encoding"] == "base64"
    html = _html_of(result.raw)
    assert f'href="{BASE}/t/c/L0"' in html
    assert "<img" not in html


def test_8bit_utf8_html_is_reencoded_without_losing_characters() -> None:
    raw = (
        "From: a@clinic.example\r\nTo: b@example.net\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
        '<p>Grüße, Zoë — <a href="https://clinic.example/ü">Termin</a></p>\r\n'
    ).encode()
    result = instrument(raw, track_link=_track, pixel_url=f"{BASE}/t/o/P")
    msg = email.message_from_bytes(result.raw, policy=policy.default)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    html = _html_of(result.raw)
    assert "Grüße, Zoë —" in html
    assert f'<a href="{BASE}/t/c/L0">Termin</a>' in html
    assert html.rstrip().endswith(
        f'<img src="{BASE}/t/o/P" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )
    assert result.urls == ["https://clinic.example/ü"]


def test_html_attachment_and_forwarded_message_are_not_touched() -> None:
    inner = EmailMessage()
    inner["Subject"] = "forwarded"
    inner.set_content('<a href="https://forwarded.example/">x</a>', subtype="html")
    msg = EmailMessage()
    msg["Subject"] = "mixed"
    msg.set_content('<a href="https://body.example/">x</a>', subtype="html")
    msg.add_attachment(
        b'<a href="https://attached.example/">x</a>', maintype="text", subtype="html", filename="page.html"
    )
    msg.add_attachment(inner)
    result = instrument(msg.as_bytes(policy=policy.SMTP), track_link=_track, pixel_url=None)
    assert result.urls == ["https://body.example/"]
    out = email.message_from_bytes(result.raw, policy=policy.default)
    assert isinstance(out, EmailMessage)
    parts: list[Message] = list(out.iter_attachments())
    data = parts[0].get_payload(decode=True)
    assert isinstance(data, bytes) and b"https://attached.example/" in data
    assert "https://forwarded.example/" in parts[1].as_string()


def test_message_without_html_comes_back_byte_identical() -> None:
    raw = b"From: a@x.example\r\nSubject: hi\r\n\r\nJust text https://x.example/\r\n"
    result = instrument(raw, track_link=_track, pixel_url=f"{BASE}/t/o/P")
    assert result.raw == raw and not result.changed and result.urls == []


def test_rewrite_handles_markup_without_body_and_unquoted_href() -> None:
    html, changed = rewrite_html(
        "<A HREF=https://x.example/a>x</A>", link_url=lambda u: "https://t/1", pixel_url="https://t/p"
    )
    assert changed
    assert (
        html == '<A HREF="https://t/1">x</A><img src="https://t/p" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )


def test_drop_fields_removes_folded_list_unsubscribe_only() -> None:
    raw = (
        b"From: a@x.example\r\nList-Unsubscribe: <https://old.example/u>,\r\n <mailto:u@old.example>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nSubject: keep\r\n\r\n"
        b"List-Unsubscribe: in the body stays\r\n"
    )
    out = drop_fields(raw, frozenset({"list-unsubscribe", "list-unsubscribe-post"}))
    assert out == b"From: a@x.example\r\nSubject: keep\r\n\r\nList-Unsubscribe: in the body stays\r\n"


def test_a_field_the_header_registry_cannot_parse_is_delivered_untracked() -> None:
    # Comments nested 5,400 deep in To (intake refuses these now; mail stored before may
    # have them): re-serializing raised RecursionError on every delivery attempt.
    to = b"\r\n ".join([b"(" * 900] * 6) + b"p@example.org"
    raw = (
        b"From: a@clinic.example\r\nTo: " + to + b"\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html\r\n\r\n<a href='https://example.org/x'>x</a>\r\n"
    )
    result = instrument(raw, track_link=_track, pixel_url="https://t.example/o")
    assert result.raw == raw
    assert result.urls == []
