"""Signed evidence documents: canonical JSON, a signed manifest of field digests, Ed25519.

A document is ``{"format", "body", "manifest", "signature"}``.  The manifest maps every
leaf of ``body`` (dotted path) to the SHA-256 of its canonical JSON, and the signature
covers ``{"format", "manifest"}``.  So a verifier can say *which* field was altered — the
manifest is signed, a changed value no longer matches its digest — and a changed
manifest or signature fails the signature itself.  Canonical JSON here is sorted keys,
no insignificant whitespace, UTF-8 (the shape of RFC 8785 for documents without floats).

This module does no I/O and needs only ``cryptography``: ``sealmail verify`` runs it
offline, with no database and no key ring.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "Ed25519"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: what an auditor pins."""
    return sha256_hex(raw_public(key))


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested objects by dotted path (lists and scalars are leaves)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(leaves(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def manifest(body: dict[str, Any]) -> dict[str, str]:
    return {path: sha256_hex(canonical(item)) for path, item in leaves(body).items()}


def sign(fmt: str, body: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed document for ``body``."""
    digests = manifest(body)
    signature = key.sign(canonical({"format": fmt, "manifest": digests}))
    public = key.public_key()
    return {
        "format": fmt,
        "body": body,
        "manifest": digests,
        "signature": {
            "algorithm": ALGORITHM,
            "key_fingerprint": key_fingerprint(public),
            "public_key": base64.b64encode(raw_public(public)).decode(),
            "value": base64.b64encode(signature).decode(),
        },
    }


@dataclass
class Verdict:
    """What verifying a document found; ``ok`` only when ``problems`` is empty."""

    format: str = ""
    key_fingerprint: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(doc: Any, trusted_fingerprint: str | None = None) -> Verdict:
    """Check a signed document; every problem names the field or the signature that failed."""
    verdict = Verdict()
    if not isinstance(doc, dict) or not {"format", "body", "manifest", "signature"} <= doc.keys():
        verdict.problems.append("not a Sealmail signed document (format, body, manifest, signature)")
        return verdict
    verdict.format = str(doc["format"])
    sig = doc["signature"]
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(sig["public_key"], validate=True))
        value = base64.b64decode(sig["value"], validate=True)
    except (KeyError, TypeError, ValueError):
        verdict.problems.append("signature: unreadable (public_key and value must be base64)")
        return verdict
    verdict.key_fingerprint = key_fingerprint(public)
    if sig.get("algorithm") != ALGORITHM:
        verdict.problems.append(f"signature.algorithm: expected {ALGORITHM}")
    if sig.get("key_fingerprint") != verdict.key_fingerprint:
        verdict.problems.append("signature.key_fingerprint: does not match signature.public_key")
    if trusted_fingerprint is not None and verdict.key_fingerprint != trusted_fingerprint.lower():
        verdict.problems.append(
            f"signature: signed by key {verdict.key_fingerprint}, not the trusted key {trusted_fingerprint}"
        )
    try:
        public.verify(value, canonical({"format": doc["format"], "manifest": doc["manifest"]}))
    except InvalidSignature:
        verdict.problems.append("signature: does not verify over the format and manifest")
    signed = doc["manifest"] if isinstance(doc["manifest"], dict) else {}
    found = manifest(doc["body"]) if isinstance(doc["body"], dict) else {}
    for path in sorted(signed.keys() | found.keys()):
        if path not in found:
            verdict.problems.append(f"body.{path}: missing")
        elif path not in signed:
            verdict.problems.append(f"body.{path}: not covered by the signature")
        elif signed[path] != found[path]:
            verdict.problems.append(f"body.{path}: altered after signing")
    return verdict
