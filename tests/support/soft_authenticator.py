"""A software WebAuthn authenticator (attestation "none", ES256) for HTTP-level tests.

It builds real authenticator data, COSE keys, client data and ECDSA signatures (WebAuthn
Level 2 §6), so the server's py_webauthn checks run in full; the browser suite uses
Chromium's own virtual authenticator instead.  ``count`` is the signature counter: a test
sets it back to act as a cloned authenticator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SoftAuthenticator:
    origin: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    count: int = 0

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        body = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(body).encode()

    def create(self, options_json: str, *, origin: str | None = None) -> str:
        o = json.loads(options_json)
        numbers = self.key.public_key().public_numbers()
        cose = {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
        auth_data = self._auth_data(o["rp"]["id"], 0x41) + attested + cbor2.dumps(cose)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client = self._client_data("webauthn.create", o["challenge"], origin)
        return json.dumps(
            {
                "id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64u(client), "attestationObject": b64u(attestation)},
                "clientExtensionResults": {},
            }
        )  # fmt: skip

    def get(self, options_json: str, *, origin: str | None = None, rp_id: str | None = None) -> str:
        o: dict[str, Any] = json.loads(options_json)
        self.count += 1
        auth_data = self._auth_data(rp_id or o["rpId"], 0x01)
        client = self._client_data("webauthn.get", o["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                "response": {
                    "clientDataJSON": b64u(client), "authenticatorData": b64u(auth_data),
                    "signature": b64u(signature),
                },
                "clientExtensionResults": {},
            }
        )  # fmt: skip

    def _auth_data(self, rp_id: str, flags: int) -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", self.count)
