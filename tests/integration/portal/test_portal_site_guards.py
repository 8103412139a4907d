"""The portal role served alone (``sealmail serve --role portal``, ``create_portal_site``) has
the request guards the API process puts in front of the same pages: a NUL in a path or query
is a 400 (it was a 500 from PostgreSQL on the theme, form and receipt pages), and a body
declared larger than ``SEALMAIL_MAX_REQUEST_BYTES`` is a 413 before a byte of it is read (a
sign-in or reply post of any size was parsed to disk before its CSRF token was checked)."""

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import make_settings
from tests.integration.portal.portal_harness import portal_site

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
NUL_URLS = [
    "/p/theme/%00.css",
    "/p/theme/x%00y.css",
    "/p/m/%00",
    "/p/signin?error=%00",
    "/f/%00",
    "/f/x%00y/form.css",
    "/f/receipt/%00",
    "/t/o/%00",
    "/u/%00",
]


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[tuple[str, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, db_url, portal_base_url=base, max_request_bytes=64 * 1024)
    with portal_site(settings, sock):
        yield base, port


def test_a_nul_in_a_path_or_query_is_a_400_on_every_public_page(site: tuple[str, int]) -> None:
    base, _ = site
    with httpx.Client(base_url=base, timeout=30) as c:
        for url in NUL_URLS:
            for method in ("GET", "POST"):
                r = c.request(method, url)
                assert r.status_code == 400, (method, url, r.status_code, r.text[:200])
                assert r.headers["content-type"] == "application/problem+json", url
                # A browser (it asks for HTML) gets a page, not JSON.
                page = c.request(method, url, headers={"Accept": BROWSER})
                assert page.status_code == 400 and page.headers["content-type"].startswith("text/html"), url
                assert "must not contain NUL" in page.text and "content-security-policy" in page.headers


@pytest.mark.parametrize("path", ["/p/signin/code", "/p/m/hold_x/reply", "/f/form_x", "/u/token_x"])
def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(
    site: tuple[str, int], path: str
) -> None:
    _, port = site
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Accept: {BROWSER}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 1000000000000\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="files"; filename="a.bin"\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode())
        # The answer comes without the rest of the body: waiting for it would time out here.
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"content-type: text/html" in answer.lower(), answer[:400]


def test_a_file_posted_to_a_sign_in_step_is_refused_unparsed(site: tuple[str, int]) -> None:
    # Only the reply form takes files; before any session exists a file is a 400, not a
    # temporary file spooled to disk and then refused for its missing CSRF token (403).
    base, _ = site
    with httpx.Client(base_url=base, timeout=30) as c:
        for path in ("/p/signin/code", "/p/signin/verify", "/p/signin/passphrase", "/p/signout"):
            r = c.post(path, data={"csrf": "x"}, files={"f": ("a.bin", b"x" * 1024)})
            assert r.status_code == 400, (path, r.status_code)


def test_a_value_a_public_page_cannot_convert_is_a_4xx_page_not_json(site: tuple[str, int]) -> None:
    # FastAPI's own answers (a 422 quoting the value, a 404 or 405 of JSON) were what a patient's
    # browser showed for these; each public app now answers with its own page.
    base, _ = site
    cases = {
        ("GET", "/p/signin?sent=abc"): 400,
        ("GET", "/p/signin?sent=" + "9" * 5000): 400,
        ("GET", "/p/m/hold_x/body?images=%FF"): 400,
        ("GET", "/p/m/hold_x/a/%3Cscript%3E"): 400,
        ("GET", "/f/a/b/c"): 404,
        ("POST", "/f/receipt/x"): 405,
        ("GET", "/t/a/b/c"): 404,
        ("PUT", "/u/token_x"): 405,
        ("POST", "/u/token_x/preferences"): 400,  # multipart without a boundary, below
    }
    with httpx.Client(base_url=base, timeout=30) as c:
        for (method, url), status in cases.items():
            r = c.request(method, url, content=b"x", headers={"Content-Type": "multipart/form-data"})
            assert r.status_code == status, (url, r.status_code, r.text[:200])
            assert r.headers["content-type"].startswith("text/html"), (url, r.text[:200])
            assert "<script" not in r.text and "content-security-policy" in r.headers, url
