"""The message-HTML sanitizer keeps text and layout and drops everything executable."""

from __future__ import annotations

import pytest

from sealmail.portal.branding import accessible, branding, contrast_with_white
from sealmail.portal.sanitize import clean_html
from sealmail.web.security import body_csp, csrf_ok, csrf_token

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<svg onload="alert(1)"><script>alert(1)</script></svg>',
    '<div style="width:expression(alert(1))">x</div>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<details open ontoggle="alert(1)">x</details>',
    '<form action="https://evil.example"><input autofocus onfocus="alert(1)"></form>',
    "<style>body{background:url(https://evil.example/t)}</style>",
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">'
    "</style></mglyph></table></mtext></math>",
    '<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">',
    '<base href="https://evil.example/"><meta http-equiv="refresh" content="0;url=https://evil.example">',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_nothing_executable_survives_sanitizing(payload: str) -> None:
    out = clean_html(payload).lower()
    markers = ("<script", "onerror", "onload", "ontoggle", "onfocus", "javascript:", "expression(",
               "<iframe", "<form", "<svg", "<style", "<object", "<embed", "<base", "<meta",
               "url(")  # fmt: skip
    for marker in markers:
        assert marker not in out, (payload, out)


def test_text_and_safe_formatting_survive() -> None:
    out = clean_html(
        '<p style="color:#333;text-align:center">Hello <b>there</b> <a href="https://x.example">link</a></p>'
    )
    assert "Hello <b>there</b>" in out
    assert 'style="color:#333;text-align:center"' in out
    assert 'target="_blank"' in out and 'rel="noopener noreferrer"' in out


def test_body_policy_blocks_scripts_and_images_until_asked() -> None:
    assert "img-src 'none'" in body_csp(images=False)
    assert "img-src https:" in body_csp(images=True)
    for policy in (body_csp(False), body_csp(True)):
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert "sandbox" in policy and "allow-scripts" not in policy


def test_csrf_token_is_bound_to_its_cookie() -> None:
    assert csrf_ok("cookie-a", csrf_token("cookie-a"))
    assert not csrf_ok("cookie-b", csrf_token("cookie-a"))
    assert not csrf_ok(None, csrf_token("cookie-a"))
    assert not csrf_ok("cookie-a", "")


def test_pale_brand_colours_are_darkened_to_aa_contrast() -> None:
    assert contrast_with_white(accessible("#ffff00")) >= 4.5
    assert accessible("#0b5cad") == "#0b5cad"
    b = branding("Clinic", {"branding": {"primary_color": "red; x", "logo_url": "javascript:alert(1)"}})
    assert b.color == "#0b5cad" and b.logo_url is None
    ok = branding(
        "Clinic", {"branding": {"primary_color": "#123456", "logo_url": "https://cdn.example/l.png"}}
    )
    assert ok.logo_origin == "https://cdn.example"
