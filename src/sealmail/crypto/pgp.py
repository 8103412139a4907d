"""OpenPGP for SecureLine: certificate inspection, tenant keys and PGP/MIME encryption.

Size: one file on purpose: one standard (OpenPGP, RFC 9580 / PGP/MIME RFC 3156), and the
only door to pysequoia, so its unstable API changes in one place.

This module is Sealmail's only door to pysequoia (the Sequoia-PGP bindings); nothing else
imports the library, so its unstable API ("API is **not** stable", README) changes in one
place.  Library exceptions are translated here into ``CertificateError``.

Interoperability rules (docs/research/encryption.md):

* We send SEIPDv1 (RFC 9580 §5.13.1, the RFC 4880 format gpg 2.2 and Thunderbird read) unless
  **every** recipient certificate advertises SEIPDv2 in its Features subpacket (RFC 9580
  §5.2.3.32).  Sequoia's ``Encryptor`` applies exactly that rule from each certificate's
  validated Features; ``seipd_version`` lets tests check it on the wire.
* We never mint v6 keys: tenant keys use ``Profile.RFC4880`` (v4 keys, v4 signatures).
* pysequoia evaluates validity at the wall clock only and, when a certificate has no live
  encryption subkey, silently falls back to an *expired* one.  So expiry, revocation and
  capability are decided here (``CertInfo``), and ``encrypt_pgp_mime`` refuses certificates
  that are not usable now instead of trusting the library's fallback.

Parsed certificates are cacheable: ``load_cert`` returns a ``LoadedCert`` that
``encrypt_pgp_mime`` reuses, so the per-message cost is the encryption itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pysequoia
from pysequoia.packet import PacketPile, PublicKeyAlgorithm, SignatureType, Tag

from sealmail.crypto import header_protection as hp
from sealmail.domain.wire import crlf_only

__all__ = [
    "CertInfo",
    "CertificateError",
    "EncryptionKey",
    "LoadedCert",
    "SigningKey",
    "UnusableCertificate",
    "encrypt_pgp_mime",
    "generate_tenant_key",
    "inspect_cert",
    "load_cert",
    "load_signing_key",
    "seipd_version",
]


class CertificateError(ValueError):
    """A certificate or key cannot be parsed or used; the message names no key material."""


class UnusableCertificate(CertificateError):
    """A parsed certificate is revoked, expired or cannot encrypt at the time of use."""


# RFC 9580 §5.2.3.32: Features octet flags.
_FEATURE_SEIPD_V1 = 0x01
_FEATURE_SEIPD_V2 = 0x08
# RFC 9580 §5.2.3.29: Key Flags subpacket type; §5.2.3.32: Features subpacket type.
_SUBPACKET_FEATURES = 30

_CERTIFICATIONS = (
    SignatureType.GenericCertification,
    SignatureType.PersonaCertification,
    SignatureType.CasualCertification,
    SignatureType.PositiveCertification,
)

# RFC 9580 §9.2 (ECC curves) and RFC 6637: curve OIDs as they appear in key material.
_CURVES = {
    bytes.fromhex("2b06010401da470f01"): "Ed25519",
    bytes.fromhex("2b060104019755010501"): "Cv25519",
    bytes.fromhex("2b6570"): "Ed25519",
    bytes.fromhex("2b656e"): "X25519",
    bytes.fromhex("2a8648ce3d030107"): "NIST P-256",
    bytes.fromhex("2b81040022"): "NIST P-384",
    bytes.fromhex("2b81040023"): "NIST P-521",
    bytes.fromhex("2b2403030208010107"): "brainpoolP256r1",
    bytes.fromhex("2b240303020801010b"): "brainpoolP384r1",
    bytes.fromhex("2b240303020801010d"): "brainpoolP512r1",
}


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """One encryption-capable (sub)key and the window in which it may be used."""

    key_id: str
    algorithm: str
    created: datetime
    expires: datetime | None
    revoked: bool

    def usable_at(self, now: datetime) -> bool:
        return not self.revoked and self.created <= now and (self.expires is None or now < self.expires)


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What Sealmail needs to know about a recipient certificate, evaluated at ``now``.

    ``can_encrypt`` is the answer at the inspection time; ``usable_for`` re-evaluates the
    windows in ``encryption_keys`` for any other time.
    """

    fingerprint: str
    key_id: str
    version: int
    emails: tuple[str, ...]
    created: datetime
    expires: datetime | None
    revoked: bool
    can_encrypt: bool
    supports_seipd_v2: bool
    algorithm: str
    encryption_keys: tuple[EncryptionKey, ...] = ()

    def encryption_problem(self, now: datetime) -> str | None:
        """Why the certificate cannot be encrypted to at ``now``, or None if it can."""
        if self.revoked:
            return "revoked"
        if now < self.created:
            return f"not valid before {self.created.date().isoformat()}"
        if self.expires is not None and now >= self.expires:
            return f"expired on {self.expires.date().isoformat()}"
        if not any(key.usable_at(now) for key in self.encryption_keys):
            return "no encryption-capable subkey"
        return None

    def usable_for(self, address: str, now: datetime) -> tuple[bool, str]:
        """Whether SecureLine may encrypt mail for ``address`` to this certificate at ``now``.

        "Valid, unexpired, unrevoked, encryption-capable cert for the address": the reason
        is a short phrase for the delivery record ("expired on 2026-01-01", "revoked", ...).
        """
        problem = self.encryption_problem(now)
        if problem is not None:
            return False, problem
        if _normalize_address(address) not in self.emails:
            return False, f"no user id for <{address.strip().strip('<>')}>"
        return True, "usable"


@dataclass(frozen=True, slots=True, eq=False)
class LoadedCert:
    """A parsed, validated certificate; cache it and pass it to ``encrypt_pgp_mime``."""

    info: CertInfo
    _cert: pysequoia.Cert

    def __repr__(self) -> str:
        return f"LoadedCert(fingerprint={self.info.fingerprint})"


@dataclass(frozen=True, slots=True, eq=False)
class SigningKey:
    """A parsed tenant secret key ready to sign; never printed."""

    fingerprint: str
    _signer: pysequoia.PySigner

    def __repr__(self) -> str:
        return f"SigningKey(fingerprint={self.fingerprint})"


# ---------------------------------------------------------------------------------------
# Certificates


def _library_reason(exc: BaseException) -> str:
    # Sequoia's messages may be followed by a Rust backtrace; the first line is the reason
    # and never carries key material.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first[:160]


def _looks_secret(data: bytes) -> bool:
    head = data.lstrip()[:64]
    if head.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK"):
        return True
    if not head or head.startswith(b"-----"):
        return False
    # RFC 9580 §4.2: the packet tag is in bits 5-0 (new format) or 5-2 (legacy format).
    ctb = head[0]
    tag = ctb & 0x3F if ctb & 0x40 else (ctb >> 2) & 0x0F
    return bool(ctb & 0x80) and tag == 5


def _parse_one_cert(data: bytes) -> pysequoia.Cert:
    if not data.strip():
        raise CertificateError("empty certificate: expected one OpenPGP public key (armored or binary)")
    if _looks_secret(data):
        raise CertificateError(
            "a secret key was given where a public certificate is expected; export the public key"
        )
    try:
        certs = pysequoia.Cert.split_bytes(data)
    except RuntimeError as exc:
        raise CertificateError(f"not a valid OpenPGP certificate: {_library_reason(exc)}") from exc
    if len(certs) != 1:
        raise CertificateError(f"expected exactly one OpenPGP certificate, found {len(certs)}")
    # ``Cert.has_secret_keys`` is deprecated in pysequoia 0.1.35 (it warns), so secret input
    # is caught by ``_looks_secret`` above; Cert serialization drops secrets in any case.
    return certs[0]


def _subpackets(body: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (type, data) of a signature's *hashed* subpackets (RFC 9580 §5.2.3.7).

    Only the hashed area is read: unhashed subpackets are not covered by the signature.
    """
    if not body:
        return
    version = body[0]
    if version == 4:
        length = int.from_bytes(body[4:6], "big")
        area = body[6 : 6 + length]
    elif version == 6:
        length = int.from_bytes(body[4:8], "big")
        area = body[8 : 8 + length]
    else:
        return
    i = 0
    while i < len(area):
        first = area[i]
        if first < 192:
            size, i = first, i + 1
        elif first < 255:
            if i + 1 >= len(area):
                return
            size, i = ((first - 192) << 8) + area[i + 1] + 192, i + 2
        else:
            size, i = int.from_bytes(area[i + 1 : i + 5], "big"), i + 5
        if size == 0 or i + size > len(area):
            return
        yield area[i] & 0x7F, area[i + 1 : i + size]
        i += size


def _features(body: bytes) -> int | None:
    for kind, data in _subpackets(body):
        if kind == _SUBPACKET_FEATURES:
            return data[0] if data else 0
    return None


def _key_algorithm(body: bytes, algo: PublicKeyAlgorithm | None) -> str:
    """Describe a key packet's algorithm and size from its material (RFC 9580 §5.5.2)."""
    if len(body) < 6:
        return "unknown"
    material = body[10:] if body[0] == 6 else body[6:]
    if algo in (PublicKeyAlgorithm.RSAEncryptSign, PublicKeyAlgorithm.RSAEncrypt, PublicKeyAlgorithm.RSASign):
        return f"RSA-{int.from_bytes(material[0:2], 'big')}"
    if algo in (PublicKeyAlgorithm.ECDH, PublicKeyAlgorithm.ECDSA, PublicKeyAlgorithm.EdDSA) and material:
        oid = material[1 : 1 + material[0]]
        return _CURVES.get(oid, f"ECC OID {oid.hex()}")
    if algo is None:
        return "unknown"
    # pysequoia's enum members are not hashable, so no dict lookup; repr is "Enum.Member".
    return repr(algo).rsplit(".", 1)[-1]


def _normalize_address(address: str) -> str:
    value = address.strip().strip("<>").strip()
    local, at, domain = value.rpartition("@")
    if not at:
        return value.lower()
    try:
        # IDNA: compare A-labels so "bücher.example" and "xn--bcher-kva.example" match.
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{local}@{domain}".lower()


def _email_of(user_id: str) -> str | None:
    # RFC 9580 §5.11: by convention "Name (Comment) <addr-spec>", or a bare addr-spec.
    text = user_id.strip()
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1 : -1]
    if "@" not in text or any(c.isspace() for c in text):
        return None
    return _normalize_address(text)


@dataclass
class _Component:
    kind: str  # "primary", "uid", "subkey", "other"
    name: str = ""
    key_id: str = ""
    created: datetime | None = None
    algorithm: str = ""
    signatures: list[pysequoia.packet.Packet] = field(default_factory=list)


def _probe_encryption_key_ids(cert: pysequoia.Cert) -> frozenset[str]:
    """Key ids of the (sub)keys Sequoia itself accepts as encryption keys.

    Sequoia verifies binding signatures under its standard policy (SHA-1 and weak keys
    rejected); our packet walk does not verify signatures.  Encrypting an empty message
    once at load time and reading the PKESK packets (RFC 9580 §5.1) lets the library's
    verdict veto subkeys whose bindings are bad.
    """
    try:
        ciphertext = pysequoia.encrypt(b"", [cert], armor=False)
    except RuntimeError:
        return frozenset()
    ids: set[str] = set()
    for packet in PacketPile.from_bytes(ciphertext):
        if packet.tag != Tag.PKESK:
            continue
        body = packet.body
        if body[:1] == b"\x03":
            ids.add(body[1:9].hex().upper())
        elif body[:1] == b"\x06" and len(body) > 3 and body[1] > 0:
            # v6 PKESK: length, key version, fingerprint; a v4 key id is the last 8 octets.
            fpr = body[3 : 2 + body[1]]
            ids.add((fpr[-8:] if body[2] == 4 else fpr[:8]).hex().upper())
    return frozenset(ids)


def _build_info(cert: pysequoia.Cert, now: datetime) -> CertInfo:
    packets = list(PacketPile.from_bytes(bytes(cert)))
    if not packets or packets[0].tag != Tag.PublicKey:
        raise CertificateError("certificate does not start with a primary public key")
    primary_packet = packets[0]
    fingerprint = (primary_packet.fingerprint or "").upper()
    primary_id = (primary_packet.key_id or "").upper()
    created = primary_packet.key_created
    if created is None or not fingerprint:
        raise CertificateError("certificate primary key has no creation time or fingerprint")

    primary = _Component("primary", key_id=primary_id, created=created)
    components = [primary]
    current = primary
    for packet in packets[1:]:
        if packet.tag == Tag.UserID:
            current = _Component("uid", name=packet.user_id or "")
        elif packet.tag == Tag.PublicSubkey:
            current = _Component(
                "subkey",
                key_id=(packet.key_id or "").upper(),
                created=packet.key_created,
                algorithm=_key_algorithm(packet.body, packet.key_algorithm),
            )
        elif packet.tag == Tag.Signature:
            issuer = (packet.issuer_fingerprint or "").upper()
            issuer_id = (packet.issuer_key_id or "").upper()
            # Only self-signatures bind components (RFC 9580 §5.2.1); third-party
            # certifications say nothing about usability.
            if (issuer and issuer == fingerprint) or (not issuer and issuer_id == primary_id):
                current.signatures.append(packet)
            continue
        else:
            current = _Component("other")
        components.append(current)

    def newest(sigs: Sequence[pysequoia.packet.Packet]) -> pysequoia.packet.Packet | None:
        dated = [s for s in sigs if s.signature_created is not None]
        return max(dated, key=lambda s: s.signature_created or created) if dated else None

    def of_type(comp: _Component, kinds: tuple[SignatureType, ...]) -> list[pysequoia.packet.Packet]:
        return [s for s in comp.signatures if s.signature_type in kinds]

    direct = newest(of_type(primary, (SignatureType.DirectKey,)))
    revoked = cert.is_revoked or bool(of_type(primary, (SignatureType.KeyRevocation,)))

    emails: list[str] = []
    uid_sigs: list[pysequoia.packet.Packet] = []
    primary_uid_sigs: list[pysequoia.packet.Packet] = []
    for comp in components:
        if comp.kind != "uid":
            continue
        binding = newest(of_type(comp, _CERTIFICATIONS))
        if binding is None or of_type(comp, (SignatureType.CertificationRevocation,)):
            continue
        uid_sigs.append(binding)
        if binding.primary_userid:
            primary_uid_sigs.append(binding)
        address = _email_of(comp.name)
        if address and address not in emails:
            emails.append(address)

    # RFC 9580 §5.2.3.10/§5.2.3.32: the primary key's expiry and Features live on the
    # primary User ID's self-signature or a direct-key signature.
    binding = newest(primary_uid_sigs) or newest(uid_sigs)
    primary_sig = binding or direct
    try:
        # Sequoia's answer is policy-checked; prefer it when the cert is valid right now.
        expires = cert.expiration
    except RuntimeError:
        period = next((s.key_validity_period for s in (binding, direct) if s and s.key_validity_period), None)
        expires = created + period if period else None

    features = next(
        (f for f in (_features(s.body) for s in (binding, direct) if s is not None) if f is not None), None
    )

    candidates: list[EncryptionKey] = []
    primary_flags = primary_sig.key_flags if primary_sig is not None else None
    primary_algorithm = _key_algorithm(primary_packet.body, primary_packet.key_algorithm)
    if primary_flags and (primary_flags.transport_encryption or primary_flags.storage_encryption):
        candidates.append(EncryptionKey(primary_id, primary_algorithm, created, expires, revoked))
    for comp in components:
        if comp.kind != "subkey" or comp.created is None:
            continue
        sub_binding = newest(of_type(comp, (SignatureType.SubkeyBinding,)))
        flags = sub_binding.key_flags if sub_binding is not None else None
        if sub_binding is None or flags is None:
            continue
        if not (flags.transport_encryption or flags.storage_encryption):
            continue
        period = sub_binding.key_validity_period
        sub_expires = comp.created + period if period else None
        if expires is not None and (sub_expires is None or expires < sub_expires):
            sub_expires = expires
        sub_revoked = revoked or bool(of_type(comp, (SignatureType.SubkeyRevocation,)))
        candidates.append(EncryptionKey(comp.key_id, comp.algorithm, comp.created, sub_expires, sub_revoked))
    # Probe only when there is something to confirm: a failing probe raises inside the
    # library, which is slow when RUST_BACKTRACE is set (a backtrace is captured).
    accepted = _probe_encryption_key_ids(cert) if candidates else frozenset()
    enc_keys = [key for key in candidates if key.key_id in accepted]

    enc_names = sorted({k.algorithm for k in enc_keys})
    version = primary_packet.body[0] if primary_packet.body else 0
    algorithm = f"{primary_algorithm} (v{version})"
    if enc_names:
        algorithm += "; encryption: " + ", ".join(enc_names)
    can_encrypt = (
        not revoked and (expires is None or now < expires) and any(k.usable_at(now) for k in enc_keys)
    )
    return CertInfo(
        fingerprint=fingerprint,
        key_id=primary_id,
        version=version,
        emails=tuple(emails),
        created=created,
        expires=expires,
        revoked=revoked,
        can_encrypt=can_encrypt,
        supports_seipd_v2=bool(features is not None and features & _FEATURE_SEIPD_V2),
        algorithm=algorithm,
        encryption_keys=tuple(enc_keys),
    )


def inspect_cert(armored_or_binary: bytes, now: datetime) -> CertInfo:
    """Describe one OpenPGP certificate (armored or binary) as of ``now`` (aware datetime)."""
    return _build_info(_parse_one_cert(armored_or_binary), now)


def load_cert(armored_or_binary: bytes, now: datetime | None = None) -> LoadedCert:
    """Parse a certificate once for reuse across messages (``info`` evaluated at ``now``)."""
    cert = _parse_one_cert(armored_or_binary)
    return LoadedCert(_build_info(cert, now or datetime.now(UTC)), cert)


# ---------------------------------------------------------------------------------------
# Tenant keys


def generate_tenant_key(user_id: str, *, validity: timedelta | None = None) -> tuple[bytes, bytes]:
    """Create a tenant archive/signing key; returns (secret armored, public armored).

    The key is v4 (``Profile.RFC4880``: Ed25519 primary and signing subkey, Cv25519
    encryption subkey, v4 self-signatures), which GnuPG 2.2 imports and uses; the RFC 9580
    v6 profile is never used (gpg 2.2 rejects v6 packets).  Caveat: Sequoia always writes
    Features = SEIPDv1|SEIPDv2 (0x09), and pysequoia offers no way to change it, so a
    message whose other recipients all advertise SEIPDv2 is sent as SEIPDv2, which this key
    can only open with Sequoia-based tooling.  Organisations that read their archive with
    GnuPG should create the archive key with gpg (Features 0x01) and import it instead.

    The secret key is *not* passphrase-protected: store it only through the vault.
    """
    validity_seconds = int(validity.total_seconds()) if validity is not None else None
    try:
        tsk = pysequoia.Tsk.generate(
            user_id,
            profile=pysequoia.Profile.RFC4880,
            cipher_suite=pysequoia.CipherSuite.Cv25519,
            validity_seconds=validity_seconds,
        )
    except RuntimeError as exc:
        raise CertificateError(f"key generation failed: {_library_reason(exc)}") from exc
    public = tsk.extract_certificate()
    first = next(iter(PacketPile.from_bytes(bytes(public))))
    # Guard against a library default changing under us: v6 keys must never be minted.
    if first.body[:1] != b"\x04":
        raise CertificateError("pysequoia generated a non-v4 key; refusing to mint it")
    return str(tsk).encode("ascii"), str(public).encode("ascii")


def load_signing_key(secret_armored_or_binary: bytes) -> SigningKey:
    """Parse a tenant secret key once for reuse as a signer (unprotected keys only)."""
    try:
        tsk = pysequoia.Tsk.from_bytes(secret_armored_or_binary)
        signer = tsk.signer()
    except RuntimeError as exc:
        raise CertificateError(
            f"not a usable unprotected OpenPGP secret signing key: {_library_reason(exc)}"
        ) from exc
    return SigningKey(tsk.extract_certificate().fingerprint.upper(), signer)


# ---------------------------------------------------------------------------------------
# PGP/MIME (RFC 3156)

# Header fields kept on the outer message: routing and threading need them in clear.
_OUTER_KEEP = frozenset(
    {"from", "sender", "to", "cc", "reply-to", "date", "message-id", "in-reply-to", "references"}
)
_OBSCURED_SUBJECT = b"Subject: " + hp.OBSCURED_SUBJECT


def _to_crlf(data: bytes) -> bytes:
    # RFC 3156 §3 / RFC 2045: MIME data is transmitted in canonical form (CRLF line ends);
    # signed content must be canonical or verification fails at the receiver.  The library's
    # armor has bare LFs only (one pass then) and stored mail is canonical already (checked
    # without a copy): both cost less than the two-step definition's two copies.
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    if crlf_only(data) or data.count(b"\n") == data.count(b"\r\n"):
        # The counts: a bare CR (no LF) stays as it is, as the two steps below leave it.
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _split(message: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """Split RFC 5322 bytes into (lowercased name, raw folded field) pairs and the body."""
    data = _to_crlf(message)
    if data.startswith(b"\r\n"):
        return [], data[2:]
    end = data.find(b"\r\n\r\n")
    block, body = (data, b"") if end < 0 else (data[:end], data[end + 4 :])
    fields: list[tuple[str, bytes]] = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            # RFC 5322 §2.2.3: a line starting with WSP continues the previous field.
            previous, raw = fields[-1]
            fields[-1] = (previous, raw + b"\r\n" + line)
            continue
        field_name, colon, _ = line.partition(b":")
        if not colon or not field_name.strip():
            raise ValueError("malformed header line in message (no field name)")
        fields.append((field_name.strip().decode("ascii", "replace").lower(), line))
    return fields, body


def _outer_fields(fields: list[tuple[str, bytes]], *, protect_subject: bool) -> list[bytes]:
    outer: list[bytes] = []
    for name, raw in fields:
        if name in _OUTER_KEEP or name.startswith(("x-sealmail-", "list-")):
            outer.append(raw)
        elif name == "subject":
            outer.append(_OBSCURED_SUBJECT if protect_subject else raw)
    if protect_subject and _OBSCURED_SUBJECT not in outer:
        outer.append(_OBSCURED_SUBJECT)
    return outer


def _load(cert: bytes | LoadedCert) -> LoadedCert:
    return cert if isinstance(cert, LoadedCert) else load_cert(cert)


def encrypt_pgp_mime(
    message: bytes,
    recipient_certs: Sequence[bytes | LoadedCert],
    *,
    archive_cert: bytes | LoadedCert | None,
    signer_secret: bytes | SigningKey | None = None,
    protect_subject: bool = True,
) -> bytes:
    """Turn a stored RFC 5322 message into an RFC 3156 ``multipart/encrypted`` message.

    The encrypted payload is the original body entity (its Content-* fields and body bytes
    unchanged) plus copies of the message's header fields and ``HP-Outer`` records of the outer
    ones, marked ``hp="cipher"`` and ``protected-headers="v1"`` (RFC 9788 and its legacy form);
    the outer Subject becomes "[...]" with ``protect_subject``.  It is encrypted to every
    recipient and the archive certificate and, with ``signer_secret``, signed inside the same OpenPGP message
    (RFC 3156 §6.2, combined method).  Raises ``UnusableCertificate`` for a certificate
    that is revoked, expired or cannot encrypt now.
    """
    certs = [_load(c) for c in recipient_certs]
    if archive_cert is not None:
        certs.append(_load(archive_cert))
    if not certs:
        raise ValueError("encrypt_pgp_mime needs at least one recipient or archive certificate")
    now = datetime.now(UTC)
    unique: dict[str, LoadedCert] = {}
    for loaded in certs:
        problem = loaded.info.encryption_problem(now)
        if problem is not None:
            raise UnusableCertificate(f"certificate {loaded.info.fingerprint} is {problem}")
        unique.setdefault(loaded.info.fingerprint, loaded)

    fields, body = _split(message)
    outer = _outer_fields(fields, protect_subject=protect_subject)
    # RFC 9788 §2.1: Content-Type leads the payload's header section; hp= marks it.
    content = sorted(
        (raw for name, raw in fields if name.startswith("content-")),
        key=lambda raw: not raw[:13].lower() == b"content-type:",
    )
    protected = hp.protected_fields([raw for _, raw in fields])
    inner = hp.payload_head(content, protected, outer) + b"\r\n" + body

    signer = None
    if signer_secret is not None:
        key = signer_secret if isinstance(signer_secret, SigningKey) else load_signing_key(signer_secret)
        signer = key._signer
    try:
        armored = pysequoia.encrypt(inner, [c._cert for c in unique.values()], signer=signer)
    except RuntimeError as exc:
        raise CertificateError(f"OpenPGP encryption failed: {_library_reason(exc)}") from exc

    boundary = b"sealmail-pgp-" + secrets.token_hex(16).encode("ascii")
    # RFC 3156 §4: two parts; the first is application/pgp-encrypted carrying "Version: 1",
    # the second application/octet-stream carrying the ASCII-armored OpenPGP message.
    outer += [
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
        b' boundary="' + boundary + b'"',
    ]
    parts = [
        b"\r\n".join(outer),
        b"",
        b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)",
        b"--" + boundary,
        b"Content-Type: application/pgp-encrypted",
        b"Content-Description: PGP/MIME version identification",
        b"",
        b"Version: 1",
        b"",
        b"--" + boundary,
        b'Content-Type: application/octet-stream; name="encrypted.asc"',
        b"Content-Description: OpenPGP encrypted message",
        b'Content-Disposition: inline; filename="encrypted.asc"',
        b"",
        _to_crlf(armored).rstrip(b"\r\n"),
        b"",
        b"--" + boundary + b"--",
        b"",
    ]
    return b"\r\n".join(parts)


def seipd_version(armored_or_binary_message: bytes) -> int | None:
    """The version of the SEIPD packet (RFC 9580 §5.13: 1 or 2) in an OpenPGP message."""
    try:
        packets = PacketPile.from_bytes(armored_or_binary_message)
    except RuntimeError as exc:
        raise CertificateError(f"not an OpenPGP message: {_library_reason(exc)}") from exc
    for packet in packets:
        if packet.tag == Tag.SEIP:
            return packet.body[0] if packet.body else None
    return None
