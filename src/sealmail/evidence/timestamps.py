"""RFC 3161 time-stamps on evidence documents, when the operator configures a TSA.

A signed document (proof or anchor) says *what*; a time-stamp token from a third party
says *by when* it existed, which a signer cannot back-date.  The imprint is the SHA-256 of
the document's canonical JSON without its ``timestamp`` member; the token (DER) rides
along in ``doc["timestamp"]`` and an auditor checks it with the TSA's certificate:

    sealmail verify FILE --tsa-ca tsa-ca.pem     (runs ``openssl ts -verify``)

The request and the response status are DER built and read here (a few fixed shapes);
the token's CMS signature is checked by OpenSSL, not by us.  The TSA is the operator's
own configuration, never a tenant's (hence httpx, not the SSRF-safe client: an operator's
TSA may well sit on a private address), and its answer is bounded in size and time: in
bytes as they arrive (nothing is decompressed) and in time as a whole (TSAs are usually
plain http, so anyone on the path can drip the answer a byte at a time).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sealmail.crypto import der
from sealmail.errors import ServiceUnavailable
from sealmail.evidence.signed import canonical

# id-sha256 (RFC 5754 §2.2), with NULL parameters as most TSAs expect.
_SHA256_ALG = der.sequence(der.oid("2.16.840.1.101.3.4.2.1"), der.null())
MAX_RESPONSE = 64 * 1024
TIMEOUT = 10.0


def request_der(digest: bytes, nonce: int) -> bytes:
    """TimeStampReq (RFC 3161 §2.4.1): v1, SHA-256 imprint, nonce, certReq TRUE."""
    imprint = der.sequence(_SHA256_ALG, der.octet_string(digest))
    return der.sequence(der.integer(1), imprint, der.integer(nonce), der.tlv(0x01, b"\xff"))


def token_from_response(data: bytes) -> bytes:
    """The TimeStampToken of a granted TimeStampResp (§2.4.2), else ValueError naming why."""
    resp, _ = der.parse(data)
    parts = resp.children if resp.tag == der.SEQUENCE else []
    if not parts or parts[0].tag != der.SEQUENCE or not parts[0].children:
        raise ValueError("not a TimeStampResp with a PKIStatusInfo")
    status_item = parts[0].children[0]
    if status_item.tag != der.INTEGER:
        raise ValueError("no PKIStatus")
    status = int.from_bytes(status_item.content, "big")
    if status not in (0, 1):  # granted, grantedWithMods
        raise ValueError(f"the TSA refused (PKIStatus {status})")
    if len(parts) < 2:
        raise ValueError("granted but no token")
    return parts[1].raw


def imprint(doc: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical({k: v for k, v in doc.items() if k != "timestamp"})).digest()


@dataclass(frozen=True, slots=True)
class Timestamper:
    url: str
    # For the whole exchange, not per read: a drip of a byte a second ends after about this
    # (a silent server after one read timeout of the same length).
    timeout: float = TIMEOUT

    def token(self, digest: bytes) -> bytes:
        nonce = secrets.randbits(63)
        deadline = time.monotonic() + self.timeout
        try:
            with (
                httpx.Client(timeout=self.timeout, follow_redirects=False) as http,
                http.stream(
                    "POST",
                    self.url,
                    content=request_der(digest, nonce),
                    # No compression: the cap must count the bytes that arrive, not what a
                    # few KB of gzip inflate to (httpx would decode a whole read at once).
                    headers={"Content-Type": "application/timestamp-query", "Accept-Encoding": "identity"},
                ) as resp,
            ):
                if resp.status_code != 200:
                    raise ServiceUnavailable(f"the time-stamp authority answered HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_raw():
                    body += chunk
                    if len(body) > MAX_RESPONSE:
                        raise ServiceUnavailable("the time-stamp authority's answer is too large")
                    if time.monotonic() > deadline:
                        raise ServiceUnavailable(
                            f"the time-stamp authority did not answer within {self.timeout:g} s"
                        )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"the time-stamp authority is unreachable ({type(exc).__name__})"
            ) from exc
        try:
            token = token_from_response(bytes(body))
        except ValueError as exc:
            raise ServiceUnavailable(f"the time-stamp authority's answer is unusable: {exc}") from exc
        if digest not in token or der.integer(nonce) not in token:
            raise ServiceUnavailable("the time-stamp token does not cover this document (imprint or nonce)")
        return token

    def stamp(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` with a ``timestamp`` member: the TSA's token over its imprint."""
        digest = imprint(doc)
        token = self.token(digest)
        return {
            **doc,
            "timestamp": {
                "rfc3161": True,
                "tsa": self.url,
                "imprint_sha256": digest.hex(),
                "token": base64.b64encode(token).decode(),
            },
        }


def check(doc: dict[str, Any], tsa_ca: Path | None) -> list[str]:
    """Problems with ``doc``'s time-stamp: imprint always; the token's signature with ``openssl
    ts -verify`` when ``tsa_ca`` (the TSA's CA certificate, PEM) is given."""
    stamp = doc.get("timestamp")
    if not isinstance(stamp, dict):
        return ["timestamp: none (no TSA was configured when it was signed)"] if tsa_ca else []
    digest = imprint(doc).hex()
    if stamp.get("imprint_sha256") != digest:
        return ["timestamp: covers a different document (imprint does not match)"]
    try:
        token = base64.b64decode(str(stamp.get("token", "")), validate=True)
    except ValueError:
        return ["timestamp.token: not base64"]
    if bytes.fromhex(digest) not in token:
        return ["timestamp.token: does not carry this document's imprint"]
    if tsa_ca is None:
        return []
    openssl = shutil.which("openssl")
    if openssl is None:
        return ["timestamp: openssl is needed to check the token's signature"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "token.tst")
        Path(path).write_bytes(token)
        done = subprocess.run(  # noqa: S603 — fixed argv, no shell
            [openssl, "ts", "-verify", "-digest", digest, "-in", path, "-token_in", "-CAfile", str(tsa_ca)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    if done.returncode != 0 or "Verification: OK" not in done.stdout:
        return [f"timestamp.token: openssl ts -verify failed ({(done.stderr or done.stdout).strip()[:200]})"]
    return []
