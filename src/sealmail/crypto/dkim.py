"""DKIM signing of outbound mail (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463).

Size: one file on purpose: one standard (DKIM, RFC 6376 / RFC 8463): canonicalization,
signing and the DNS records to publish must agree byte for byte.

Signing is the last step before transmission: it runs after encryption, over the exact
bytes the SMTP client sends, and only prepends ``DKIM-Signature`` header fields, so the
signed message after those fields is byte-identical to its input.

Why not ``dkim.sign`` from dkimpy: it does RSA in pure Python (8.4 ms a message, more than
the whole 7.2 ms CPU budget) and its regex canonicalization costs ~9 ms at 200 KB (see
``docs/research/performance.md``).  Here relaxed/relaxed canonicalization (RFC 6376 §3.4)
is done over the bytes already held, the body is hashed once with :mod:`hashlib` and the
hash is shared by every signature, and the signatures come from ``cryptography``.  The
tests verify every signature with dkimpy's independent verifier.

The module also writes the DNS records a sending domain publishes (DKIM key, SPF and
DMARC guidance) and checks them, with pure parsing helpers kept apart from the lookups.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import ipaddress
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from sealmail.domain.wire import crlf_only
from sealmail.net.dns import DnsLookupError, to_ascii_domain

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
ALGORITHMS: tuple[Algorithm, ...] = ("rsa-sha256", "ed25519-sha256")

# RFC 8301 §3.2 sets 1024 bits as the floor and recommends 2048; Sealmail signs with
# nothing weaker than the recommendation.
RSA_MIN_BITS = 2048
RSA_GENERATE_BITS = 2048

# RFC 6376 §5.4.1 lists the fields worth signing; these are the ones that carry meaning
# for the reader or the MIME structure (which, after encryption, protects the ciphertext).
DEFAULT_HEADERS: tuple[str, ...] = (
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "sender",
    "mime-version", "content-type", "content-transfer-encoding", "in-reply-to",
    "references", "list-unsubscribe", "list-unsubscribe-post",
)  # fmt: skip
# RFC 6376 §8.15: naming a field once more than it occurs signs the "null" instance, so a
# field added later (a second From, a second Subject) breaks the signature.  These are the
# RFC 5322 §3.6 singletons plus the MIME fields that decide how the body is displayed.
DEFAULT_OVERSIGN: tuple[str, ...] = (
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "sender",
    "mime-version", "content-type", "content-transfer-encoding",
)  # fmt: skip
# RFC 6376 §5.4.1: these are routinely added or changed in transit and SHOULD NOT be
# signed; signing a DKIM-Signature would make dual signatures depend on their order.
_NEVER_SIGN = frozenset({"return-path", "received", "comments", "keywords", "dkim-signature"})

_WSP_RUN = re.compile(rb"[ \t]+")
_ANY_LINE_END = re.compile(rb"\r\n|\r|\n")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# RFC 6376 §3.1: selector = sub-domain *( "." sub-domain ), sub-domain as in RFC 5321.
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_SIG_HEADER_NAME = b"DKIM-Signature"
_LINE_WIDTH = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters


@dataclass(frozen=True, slots=True)
class DkimKey:
    """One signing key of a sending domain, published at ``<selector>._domainkey.<domain>``.

    ``private_key_pem`` is an unencrypted PKCS#8 PEM; it is left out of ``repr`` so the
    key never reaches a log line or a traceback.
    """

    domain: str
    selector: str
    algorithm: Algorithm
    private_key_pem: bytes = field(repr=False)

    def __post_init__(self) -> None:
        # RFC 6376 §3.5 (d=) and RFC 8616 §4: the signing domain is written in A-labels.
        if not _NAME.fullmatch(self.domain) or "." not in self.domain:
            raise ValueError(f"DKIM domain must be an ASCII (A-label) domain name: {self.domain!r}")
        if not _NAME.fullmatch(self.selector):
            raise ValueError(f"invalid DKIM selector {self.selector!r} (RFC 6376 §3.1)")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown DKIM algorithm {self.algorithm!r}; use one of {ALGORITHMS}")

    @property
    def record_name(self) -> str:
        """Where verifiers look the key up (RFC 6376 §3.6.2.1)."""
        return f"{self.selector}._domainkey.{self.domain}"

    def public_record(self) -> str:
        """The TXT value publishing the public key (RFC 6376 §3.6.1, RFC 8463 §4)."""
        # Only the public half is read here, so OpenSSL's RSA consistency check (about 0.1 s a
        # key, and run on every listing of a domain's records) is left to the signer's load.
        key = _load_private_key(self, validate=False)
        if isinstance(key, rsa.RSAPrivateKey):
            # RFC 6376 §3.6.1: p= is the base64 DER SubjectPublicKeyInfo for k=rsa.
            der = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
        # RFC 8463 §4: for k=ed25519, p= is the base64 of the raw 32-byte public key.
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


def generate_key(domain: str, selector: str, algorithm: Algorithm) -> DkimKey:
    """A fresh RSA-2048 or Ed25519 key for ``domain`` (U-labels are converted to A-labels)."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa-sha256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_GENERATE_BITS)
    elif algorithm == "ed25519-sha256":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}; use one of {ALGORITHMS}")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return DkimKey(to_ascii_domain(domain), selector, algorithm, pem)


def _load_private_key(
    key: DkimKey, *, validate: bool = True
) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    loaded = serialization.load_pem_private_key(
        key.private_key_pem, password=None, unsafe_skip_rsa_key_validation=not validate
    )
    if key.algorithm == "rsa-sha256" and isinstance(loaded, rsa.RSAPrivateKey):
        if loaded.key_size < RSA_MIN_BITS:
            raise ValueError(f"{key.record_name}: RSA key has {loaded.key_size} bits, need {RSA_MIN_BITS}")
        return loaded
    if key.algorithm == "ed25519-sha256" and isinstance(loaded, ed25519.Ed25519PrivateKey):
        return loaded
    raise ValueError(f"{key.record_name}: private key does not match algorithm {key.algorithm}")


# -- canonicalization (RFC 6376 §3.4) ---------------------------------------------------


def to_wire_form(message: bytes) -> bytes:
    """The message as the SMTP client transmits it: every line ends in CRLF.

    RFC 5321 §2.3.8 allows only CRLF line ends and §4.1.1.4 ends DATA with CRLF.CRLF;
    ``smtp_client`` turns bare CR or LF into CRLF and adds a final CRLF, and the verifier
    sees that, so the signature is computed over the same form.  The usual input already
    is in wire form and is returned unchanged.
    """
    if not crlf_only(message):
        message = _ANY_LINE_END.sub(b"\r\n", message)
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message


def canonicalize_header_relaxed(name: bytes, value: bytes) -> bytes:
    """One header field in relaxed form, CRLF-terminated (RFC 6376 §3.4.2).

    Lowercase name, no WSP around the colon, continuation CRLFs removed, WSP runs
    collapsed to one SP and trailing WSP removed.  ``value`` is everything after the
    colon, folding included; non-ASCII (RFC 6532) bytes pass through untouched.
    """
    unfolded = value.replace(b"\r\n", b"")
    if b"\t" in unfolded or b"  " in unfolded:
        # Most fields have neither, and the regular expression costs more than both tests.
        unfolded = _WSP_RUN.sub(b" ", unfolded)
    return name.rstrip(b" \t").lower() + b":" + unfolded.strip(b" \t") + b"\r\n"


def canonicalize_body_relaxed(body: bytes) -> bytes:
    """The body in relaxed form (RFC 6376 §3.4.4); ``body`` is in wire form.

    WSP at line ends is removed, other WSP runs become one SP, empty lines at the end
    are dropped and a non-empty body ends in exactly one CRLF; an empty body (or one of
    empty lines only) canonicalizes to nothing.
    """
    body = _reduce_whitespace(body)
    end = _content_end(body)
    return body[:end] + b"\r\n" if end else b""


def _reduce_whitespace(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 a: WSP runs become one SP, WSP before a CRLF goes.

    Done with ``bytes`` methods, which run in C, instead of a regular expression (a
    200 KB text body costs a fifth).  A body with nothing to change is returned as is,
    without a copy; encrypted mail is base64 with a handful of spaces in MIME headers
    and armour lines, which ``find`` (memchr) visits one by one far faster than a
    substring search scans the whole body.
    """
    if b"\t" not in body and not _space_run_or_trailing_space(body):
        return body
    body = body.replace(b"\t", b" ")
    while b"  " in body:
        # Halving: a run of n spaces needs log2(n) passes.
        body = body.replace(b"  ", b" ")
    # After the passes above a line ends in at most one space.
    return body.replace(b" \r\n", b"\r\n")


def _space_run_or_trailing_space(body: bytes, visits: int = 64) -> bool:
    """Is any space followed by a space or a CR?"""
    position = body.find(b" ")
    for visit in range(visits):
        if position < 0:
            return False
        if body[position + 1 : position + 2] in (b" ", b"\r"):
            return True
        if visit == _TEXT_VISITS and position < _TEXT_SPAN and _spaces_further_down(body):
            # Spaces every few bytes: text, where two substring searches cost less than
            # visiting every space from Python (64 visits: 13 µs, the searches over 5 KB: 9).
            break
        position = body.find(b" ", position + 1)
    # Text, or a body with many spaces: the searches decide (most text needs no change).
    return position >= 0 and (b"  " in body or b" \r\n" in body)


def _spaces_further_down(body: bytes) -> bool:
    """Whether the body's lower half (but its last lines) holds a space: text does.

    A PGP/MIME body has its few spaces at the top (the preamble and the parts' headers) and
    at the very end (the armour's END line), none in the armour itself: visiting those
    ~25 costs a third of the two substring searches over its 9 KB.  One memchr decides.
    """
    return body.find(b" ", len(body) >> 1, len(body) - _TAIL) >= 0


# The first 8 spaces within 4 KB: text.  Base64 (encrypted mail) has a few spaces in its
# MIME and armour lines only, far apart, and memchr finds each at once.
_TEXT_VISITS, _TEXT_SPAN = 8, 4096
# The END line of the armour, the closing boundary and its CRLFs fit in this.
_TAIL = 128


def _content_end(body: bytes) -> int:
    """Length of ``body`` without its trailing CRLFs (RFC 6376 §3.4.4 "empty lines")."""
    end = len(body)
    while end and body.endswith(b"\r\n", 0, end):
        end -= 2
    return end


def body_hash_relaxed(body: bytes) -> bytes:
    """SHA-256 of the relaxed body (the bh= value before base64), in one hashing pass.

    The trailing empty lines are cut off through a memoryview rather than a slice, so a
    body that needs no whitespace change is hashed without ever being copied.
    """
    body = _reduce_whitespace(body)
    end = _content_end(body)
    digest = hashlib.sha256(memoryview(body)[:end])
    if end:
        digest.update(b"\r\n")
    return digest.digest()


def split_message(wire: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Header fields as ``(name, value)`` in order, and the body, of a wire-form message.

    ``value`` keeps its folding CRLFs.  Raises ``ValueError`` for a header section that
    is not RFC 5322 §2.2 fields.
    """
    if wire.startswith(b"\r\n"):
        return [], wire[2:]
    separator = wire.find(b"\r\n\r\n")
    if separator < 0:
        head, body = wire, b""
    else:
        head, body = wire[: separator + 2], wire[separator + 4 :]
    # Each field's lines are gathered and joined once: appending to a growing value would
    # copy it per continuation line, quadratic in a folded header (80,000 folds: seconds).
    parts: list[tuple[bytes, list[bytes]]] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            # RFC 5322 §2.2.3: a line starting with WSP continues the previous field.
            if not parts:
                raise ValueError("message header section starts with a continuation line")
            parts[-1][1].append(line)
            continue
        colon = line.find(b":")
        if colon <= 0:
            raise ValueError("message header section holds a line that is not a header field")
        parts.append((line[:colon], [line[colon + 1 :]]))
    return [(name, b"\r\n".join(lines)) for name, lines in parts], body


# -- signing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LoadedKey:
    key: DkimKey
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    tags: tuple[str, ...]  # v=, a=, c=, d=, s=: fixed for the key's lifetime


class DkimSigner:
    """Signs messages with every key it holds, one ``DKIM-Signature`` field per key.

    Keys are parsed once here; signing a message costs one body hash (none when a body
    signed a moment ago comes again, unless ``remember_bodies`` is off), plus one header
    hash and one signature per key.  ``clock`` gives the t= time (RFC 6376 §3.5).
    """

    def __init__(
        self,
        keys: Sequence[DkimKey],
        headers: Sequence[str] = DEFAULT_HEADERS,
        oversign: Sequence[str] = DEFAULT_OVERSIGN,
        *,
        clock: Callable[[], float] = time.time,
        remember_bodies: bool = True,
    ) -> None:
        if not keys:
            raise ValueError("DkimSigner needs at least one key")
        self._headers = tuple(dict.fromkeys(h.strip().lower() for h in headers))
        self._oversign = frozenset(h.strip().lower() for h in oversign)
        # RFC 6376 §5.4: the From header field MUST be signed.
        if "from" not in self._headers:
            raise ValueError("the From header field must be among the signed headers (RFC 6376 §5.4)")
        if bad := _NEVER_SIGN.intersection(self._headers):
            raise ValueError(f"these header fields must not be signed (RFC 6376 §5.4.1): {sorted(bad)}")
        if extra := self._oversign.difference(self._headers):
            raise ValueError(f"oversigned header fields must also be signed: {sorted(extra)}")
        self._wanted = frozenset(h.encode("ascii") for h in self._headers)
        # (name, name as bytes, 1 when oversigned): the h= order, worked out once.
        self._order = tuple((h, h.encode("ascii"), 1 if h in self._oversign else 0) for h in self._headers)
        self._layout_cache: dict[tuple[tuple[str, ...], int], tuple[_Layout, ...]] = {}
        self._remember_bodies = remember_bodies
        self._keys = tuple(
            _LoadedKey(
                key,
                _load_private_key(key),
                ("v=1", f"a={key.algorithm}", "c=relaxed/relaxed", f"d={key.domain}", f"s={key.selector}"),
            )
            for key in keys
        )
        self._clock = clock

    @property
    def keys(self) -> tuple[DkimKey, ...]:
        return tuple(loaded.key for loaded in self._keys)

    def sign(self, message: bytes, *, wire_form: bool = False) -> bytes:
        """``message`` with one ``DKIM-Signature`` field per key prepended, first key on top.

        ``wire_form``: the caller already made ``message`` canonical (every line ends in
        CRLF, as ``domain.wire.canonical_message`` does), so it is not scanned again.
        Raises ``ValueError`` when the message has no From field or a malformed header
        section.
        """
        return self.signature_fields(message, wire_form=wire_form) + message

    def signature_fields(self, message: bytes, *, wire_form: bool = False) -> bytes:
        """The ``DKIM-Signature`` fields ``sign`` prepends to ``message`` (CRLF-terminated)."""
        wire = message if wire_form else to_wire_form(message)
        fields, body = split_message(wire)
        # RFC 6376 §3.7: the body hash depends only on canonicalization and hash
        # algorithm, both the same for every key here, so it is computed once.
        bh = _BODY_HASHES.of(body) if self._remember_bodies else base64.b64encode(body_hash_relaxed(body))

        instances: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            lowered = name.rstrip(b" \t").lower()
            if lowered in self._wanted:
                instances.setdefault(lowered, []).append(canonicalize_header_relaxed(name, value))
        if b"from" not in instances:
            raise ValueError("message has no From header field; DKIM requires one (RFC 6376 §5.4)")

        names: list[str] = []
        hashed = bytearray()
        for header, wanted, extra in self._order:
            present = instances.get(wanted)
            if present:
                # RFC 6376 §5.4.2: with several instances, sign them from the bottom up.
                hashed.extend(present[0] if len(present) == 1 else b"".join(reversed(present)))
                names.extend([header] * (len(present) + extra))
            elif extra:
                # RFC 6376 §5.4 / §8.15: a name listed once more than it occurs signs the
                # null instance, so adding one later breaks the signature (oversigning).
                names.append(header)
        timestamp = str(int(self._clock())).encode("ascii")
        layouts = self._layouts(tuple(names), len(timestamp))
        # RFC 6376 §3.7: the hash input is the signed fields, then the signature field in
        # canonical form with an empty b= and without its trailing CRLF.
        signed = bytes(hashed)
        signatures = [
            self._signature_field(loaded, layout, signed, timestamp, bh)
            for loaded, layout in zip(self._keys, layouts, strict=True)
        ]
        return b"".join(signatures)

    def wire_fields(self, message: bytes) -> bytes:
        """``signature_fields`` of a message already in wire form (CRLF, canonical)."""
        return self.signature_fields(message, wire_form=True)

    def _layouts(self, names: tuple[str, ...], timestamp_length: int) -> tuple[_Layout, ...]:
        """Each key's field for this h= list, cached: most mail carries the same fields."""
        cache_key = (names, timestamp_length)
        layouts = self._layout_cache.get(cache_key)
        if layouts is None:
            if len(self._layout_cache) >= _LAYOUTS_KEPT:
                self._layout_cache.clear()
            layouts = tuple(_Layout.of(loaded.tags, names, timestamp_length) for loaded in self._keys)
            self._layout_cache[cache_key] = layouts
        return layouts

    @staticmethod
    def _signature_field(
        loaded: _LoadedKey, layout: _Layout, hashed: bytes, timestamp: bytes, bh: bytes
    ) -> bytes:
        data = layout.canonical.fill(timestamp, bh, prefix=hashed)
        if isinstance(loaded.private, rsa.RSAPrivateKey):
            signature = loaded.private.sign(data, _PKCS1V15, _SHA256)
        else:
            # RFC 8463 §3: Ed25519 (PureEdDSA) signs the SHA-256 hash of the data.
            signature = loaded.private.sign(hashlib.sha256(data).digest())
        return layout.folded.fill(timestamp, bh) + _fold_b64(base64.b64encode(signature)) + b"\r\n"


# Placeholders for t= and bh= while a layout is folded: neither character can occur in a
# tag, a domain or a selector, and neither is WSP, so both survive folding and relaxed
# canonicalization at the same place and width as the values they stand for.
_T_SLOT, _BH_SLOT = b"#", b"%"
_BH_LENGTH = 44  # base64 of a SHA-256 digest
_LAYOUTS_KEPT = 64


class _RecentBodies:
    """bh= (base64) of the last few bodies signed in this process, by any signer.

    bh= depends on the body alone (relaxed canonicalization and SHA-256 for every key
    here).  A message to several domains is signed once per delivery with only its trace
    field differing, so its body comes again within moments; telling bodies apart costs a
    length check and at most a memcmp.  Bodies over ``max_size`` are not kept, so the
    memory held is at most ``kept`` × ``max_size`` for the whole process.
    """

    def __init__(self, kept: int, max_size: int) -> None:
        self._kept, self._max_size = kept, max_size
        self._recent: list[tuple[bytes, bytes]] = []  # (body, bh), newest first

    def of(self, body: bytes) -> bytes:
        for seen, bh in self._recent:
            if seen == body:
                return bh
        bh = base64.b64encode(body_hash_relaxed(body))
        if len(body) <= self._max_size:
            # A new list, not an append: a thread reading the old one never sees it change.
            self._recent = [(body, bh), *self._recent[: self._kept - 1]]
        return bh


_BODY_HASHES = _RecentBodies(kept=4, max_size=1024 * 1024)
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


@dataclass(frozen=True, slots=True)
class _Template:
    """Text with a hole for the t= value and one for the bh= value."""

    head: bytes
    middle: bytes
    tail: bytes

    @classmethod
    def split(cls, text: bytes, timestamp_length: int) -> _Template:
        # t= comes before h= and bh= after it, so a header name holding either character
        # (RFC 5322 allows both) cannot be taken for a slot.
        head, rest = text.split(_T_SLOT * timestamp_length, 1)
        middle, tail = rest.rsplit(_BH_SLOT * _BH_LENGTH, 1)
        return cls(head, middle, tail)

    def fill(self, timestamp: bytes, bh: bytes, prefix: bytes = b"") -> bytes:
        return b"".join((prefix, self.head, timestamp, self.middle, bh, self.tail))


@dataclass(frozen=True, slots=True)
class _Layout:
    """One key's ``DKIM-Signature`` field for one h= list, up to ``b=``.

    Folding (78 columns) depends only on the lengths of t= and bh=, so the field and its
    relaxed form (the last piece of the signed data) are built once per h= list and the
    values dropped into place per message.
    """

    folded: _Template
    canonical: _Template

    @classmethod
    def of(cls, tags: tuple[str, ...], names: tuple[str, ...], timestamp_length: int) -> _Layout:
        # RFC 6376 §3.5: no l= (a length limit lets anyone append content, §8.2) and no
        # i= (it defaults to @d).  b= comes last so its value can be folded on its own.
        t_slot = (_T_SLOT * timestamp_length).decode("ascii")
        bh_slot = (_BH_SLOT * _BH_LENGTH).decode("ascii")
        folded = _fold_tags([*tags, f"t={t_slot}", "h=" + ":".join(names), f"bh={bh_slot}"])
        name, value = folded.split(b":", 1)
        canonical = canonicalize_header_relaxed(name, value)[:-2]
        return cls(_Template.split(folded, timestamp_length), _Template.split(canonical, timestamp_length))


def _fold_tags(tags: list[str]) -> bytes:
    """``DKIM-Signature: tag; tag; …;`` folded at 78 columns, then ``b=`` on a line of its own.

    Folding adds CRLF before a space between tags, or inside h= before a space after a
    colon (RFC 6376 §3.5 allows FWS there); relaxed canonicalization (§3.4.2) turns the
    folded and the unfolded field into the same bytes, and the hash is computed from
    this very text, so signer and verifier agree.
    """
    lines: list[str] = []
    line = _SIG_HEADER_NAME.decode("ascii") + ":"
    for tag in tags:
        pieces = tag.split(":") if tag.startswith("h=") else [tag]
        for index, piece in enumerate(pieces):
            text = " " + piece + (";" if index == len(pieces) - 1 else ":")
            if index and len(line) + len(text) - 1 <= _LINE_WIDTH:
                text = text[1:]  # stay on the line: no space after the colon
            elif len(line) + len(text) > _LINE_WIDTH:
                lines.append(line)
                line = ""
            line += text
    lines.extend([line, " b="])
    return "\r\n".join(lines).encode("ascii")


def _fold_b64(value: bytes, first: int = 72, width: int = 76) -> bytes:
    # RFC 6376 §3.5: whitespace inside b= is ignored, so the value may be folded.
    chunks = [value[:first]] + [value[i : i + width] for i in range(first, len(value), width)]
    return b"\r\n ".join(chunk for chunk in chunks if chunk)


# -- DNS records: what to publish -------------------------------------------------------


class RecordPurpose(enum.StrEnum):
    DKIM = "dkim"
    SPF = "spf"
    DMARC = "dmarc"
    RETURN_PATH = "return_path"
    # Inbound transport posture (checked, recommended, not required to send).
    MTA_STS = "mta_sts"
    TLS_RPT = "tls_rpt"


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """A record the domain owner publishes; ``name`` without the trailing dot."""

    name: str
    type: str
    value: str
    purpose: RecordPurpose

    @property
    def zone_value(self) -> str:
        """The value in zone-file form, as quoted strings of at most 255 bytes.

        RFC 1035 §3.3.14: one TXT character-string holds 255 bytes, and a 2048-bit RSA
        key record is longer; verifiers join the strings (RFC 6376 §3.6.2.2).
        """
        raw = self.value.encode("utf-8")
        chunks = [raw[i : i + 255].decode("utf-8") for i in range(0, len(raw), 255)] or [""]
        return " ".join(f'"{chunk}"' for chunk in chunks)


def spf_value(
    mail_servers_hint: Sequence[str] = (), includes: Sequence[str] = (), all_qualifier: str = "~all"
) -> str:
    """An SPF record (RFC 7208 §4-5) authorizing the given relays.

    Each hint is an IPv4/IPv6 address or network (``ip4:``/``ip6:``) or a host name
    (``a:``); ``includes`` are providers' SPF domains.  With neither, the domain's MX
    hosts are authorized.
    """
    terms: list[str] = []
    for hint in mail_servers_hint:
        try:
            network = ipaddress.ip_network(hint.strip(), strict=False)
        except ValueError:
            terms.append(f"a:{to_ascii_domain(hint)}")
            continue
        text = str(network.network_address) if network.num_addresses == 1 else str(network)
        terms.append(f"ip{network.version}:{text}")
    terms.extend(f"include:{to_ascii_domain(domain)}" for domain in includes)
    if not terms:
        terms.append("mx")
    # RFC 7208 §4.6.4: more than 10 DNS-querying terms make evaluation a permerror.
    lookups = sum(1 for term in terms if term.split(":", 1)[0] in ("a", "mx", "include"))
    if lookups > 10:
        raise ValueError(f"SPF record would need {lookups} DNS lookups; RFC 7208 §4.6.4 allows 10")
    if all_qualifier not in ("~all", "-all"):
        raise ValueError("all_qualifier must be '~all' or '-all'")
    return " ".join(["v=spf1", *terms, all_qualifier])


def dns_records(
    domain: str,
    keys: Sequence[DkimKey],
    mail_servers_hint: Sequence[str] = (),
    *,
    spf_includes: Sequence[str] = (),
    spf_all: str = "~all",
    dmarc_policy: Literal["none", "quarantine", "reject"] = "quarantine",
    dmarc_rua: str | None = None,
    return_path: tuple[str, str] | None = None,
) -> list[DnsRecord]:
    """The DKIM key records plus SPF and DMARC guidance for a sending domain.

    ``return_path`` (return-path domain, inbound MX host): signed return paths are used
    (``bounces/return_path.py``), so that domain needs an MX for bounces and complaints
    to come back through, and an SPF record of its own (SPF checks the MAIL FROM domain).
    """
    ascii_domain = to_ascii_domain(domain)
    records = [DnsRecord(key.record_name, "TXT", key.public_record(), RecordPurpose.DKIM) for key in keys]
    records.append(
        DnsRecord(ascii_domain, "TXT", spf_value(mail_servers_hint, spf_includes, spf_all), RecordPurpose.SPF)
    )
    # RFC 7489 §6.3: adkim=s requires the DKIM d= to equal the From domain exactly, which
    # Sealmail's per-sender-domain keys satisfy.  SPF is relaxed (aspf=r): the envelope
    # sender is a signed return path at a subdomain (bounces.<domain>), which aligns only
    # under relaxed alignment.
    rua = dmarc_rua or f"mailto:dmarc-reports@{ascii_domain}"
    dmarc = f"v=DMARC1; p={dmarc_policy}; rua={rua}; adkim=s; aspf=r"
    records.append(DnsRecord(f"_dmarc.{ascii_domain}", "TXT", dmarc, RecordPurpose.DMARC))
    if return_path is not None:
        rp_domain, mx_host = to_ascii_domain(return_path[0]), to_ascii_domain(return_path[1])
        spf = spf_value(mail_servers_hint, spf_includes, spf_all)
        records.append(DnsRecord(rp_domain, "MX", f"10 {mx_host}", RecordPurpose.RETURN_PATH))
        records.append(DnsRecord(rp_domain, "TXT", spf, RecordPurpose.RETURN_PATH))
    return records


# -- DNS records: checking what is published --------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Whether one published record is right; ``detail`` says what to fix when it is not."""

    name: str
    ok: bool
    detail: str
    purpose: RecordPurpose


class TxtResolver(Protocol):
    """The lookup ``check_dns`` needs; :class:`sealmail.net.dns.Resolver` provides it."""

    async def txt(self, name: str) -> list[str]: ...


def parse_tag_list(text: str) -> dict[str, str]:
    """A tag=value list (RFC 6376 §3.2) as a dict; FWS around tags and values is dropped.

    Raises ``ValueError`` for a malformed list or a duplicate tag.
    """
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        tag, eq, value = part.partition("=")
        tag = tag.strip()
        if not eq or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", tag):
            raise ValueError(f"malformed tag-spec {part.strip()!r}")
        if tag in tags:
            raise ValueError(f"duplicate tag {tag}=")
        tags[tag] = value.strip()
    return tags


def check_dkim_records(key: DkimKey, records: Sequence[str]) -> CheckResult:
    """Does the TXT RRset at the key's name publish exactly this key?"""
    name = key.record_name

    def result(ok: bool, detail: str) -> CheckResult:
        return CheckResult(name, ok, detail, RecordPurpose.DKIM)

    # Loading an RSA key validates it (~0.1 s), so the record is derived once.
    record = DnsRecord(name, "TXT", key.public_record(), RecordPurpose.DKIM)
    publish = f"{name}. TXT {record.zone_value}"
    expected = parse_tag_list(record.value)
    if not records:
        return result(False, f"no TXT record; publish: {publish}")
    if len(records) > 1:
        # RFC 6376 §3.6.2.2: with several records the outcome is undefined.
        return result(False, f"{len(records)} TXT records; publish exactly one: {publish}")
    try:
        tags = parse_tag_list(records[0])
    except ValueError as exc:
        return result(False, f"unparsable record ({exc}); publish: {publish}")
    # RFC 6376 §3.6.1: v= is optional but, when present, must be DKIM1; k= defaults to rsa.
    if tags.get("v", "DKIM1") != "DKIM1":
        return result(False, f"v={tags['v']} is not DKIM1")
    if tags.get("k", "rsa") != expected["k"]:
        return result(False, f"k={tags.get('k', 'rsa')} but the key is {expected['k']}")
    if "h" in tags and "sha256" not in {h.strip() for h in tags["h"].split(":")}:
        return result(False, f"h={tags['h']} does not allow sha256")
    published = re.sub(r"\s+", "", tags.get("p", ""))
    if not published:
        return result(False, "p= is empty: the key is revoked (RFC 6376 §3.6.1)")
    if published != expected["p"]:
        return result(False, "p= holds a different public key than this selector's private key")
    testing = " (t=y: testing mode, verifiers may ignore failures)" if "y" in tags.get("t", "") else ""
    return result(True, f"public key matches{testing}")


def check_spf_records(domain: str, records: Sequence[str], expect: Sequence[str] = ()) -> CheckResult:
    """Is there exactly one SPF record, not ``+all``, holding every ``expect`` term?"""

    def result(ok: bool, detail: str) -> CheckResult:
        return CheckResult(domain, ok, detail, RecordPurpose.SPF)

    # RFC 7208 §4.5: records start with "v=spf1" then a space or the end; more than one
    # is a permerror.
    spf = [r for r in records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    if not spf:
        return result(False, "no SPF record (v=spf1)")
    if len(spf) > 1:
        return result(False, f"{len(spf)} SPF records; RFC 7208 §4.5 makes that a permerror, merge them")
    terms = [t.lower() for t in spf[0].split()[1:]]
    if "+all" in terms or "all" in terms:
        return result(False, "'+all' authorizes every host on the Internet; end with ~all or -all")
    missing = [term for term in expect if term.lower() not in terms]
    if missing:
        return result(False, f"SPF record lacks {' '.join(missing)}")
    return result(True, spf[0])


def check_dmarc_records(domain: str, records: Sequence[str]) -> CheckResult:
    """Is there exactly one DMARC record with a valid p= policy (RFC 7489 §6.3)?"""
    name = f"_dmarc.{domain}"

    def result(ok: bool, detail: str) -> CheckResult:
        return CheckResult(name, ok, detail, RecordPurpose.DMARC)

    # RFC 7489 §6.6.3: records not starting with v=DMARC1 are ignored; if more than one
    # remains, the domain has no DMARC policy.
    dmarc = [r for r in records if re.match(r"v\s*=\s*DMARC1\s*(;|$)", r)]
    if not dmarc:
        return result(False, "no DMARC record (v=DMARC1)")
    if len(dmarc) > 1:
        return result(False, f"{len(dmarc)} DMARC records; receivers then apply none, keep one")
    try:
        tags = parse_tag_list(dmarc[0])
    except ValueError as exc:
        return result(False, f"unparsable DMARC record: {exc}")
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return result(False, "DMARC record has no valid p= policy (none, quarantine or reject)")
    if policy == "none":
        return result(True, "p=none: monitoring only, failing mail is still delivered")
    return result(True, f"p={policy}")


async def _lookup(resolver: TxtResolver, name: str) -> list[str] | str:
    """The TXT strings at ``name``, or the reason the lookup failed."""
    try:
        return await resolver.txt(name)
    except DnsLookupError as exc:
        return str(exc)


async def check_dns(
    domain: str,
    keys: Sequence[DkimKey],
    resolver: TxtResolver,
    *,
    spf_expect: Sequence[str] = (),
) -> list[CheckResult]:
    """Look up and check the DKIM keys, SPF and DMARC records of ``domain``.

    A failed lookup is a failed check whose detail says so (try again later), not an
    exception.
    """
    ascii_domain = to_ascii_domain(domain)
    names = [key.record_name for key in keys] + [ascii_domain, f"_dmarc.{ascii_domain}"]
    answers = await asyncio.gather(*(_lookup(resolver, name) for name in names))
    results: list[CheckResult] = []
    purposes = [RecordPurpose.DKIM] * len(keys) + [RecordPurpose.SPF, RecordPurpose.DMARC]
    for index, (name, answer, purpose) in enumerate(zip(names, answers, purposes, strict=True)):
        if isinstance(answer, str):
            results.append(CheckResult(name, False, f"DNS lookup failed, try again: {answer}", purpose))
        elif purpose is RecordPurpose.DKIM:
            results.append(check_dkim_records(keys[index], answer))
        elif purpose is RecordPurpose.SPF:
            results.append(check_spf_records(ascii_domain, answer, spf_expect))
        else:
            results.append(check_dmarc_records(ascii_domain, answer))
    return results
