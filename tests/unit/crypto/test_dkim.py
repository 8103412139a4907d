"""DKIM signing: every signature is checked by dkimpy's verifier, an independent implementation.

dkimpy does its own canonicalization, its own RSA (pure Python) and Ed25519 through PyNaCl,
so a signature it accepts was not merely agreed with by our own code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sealmail.crypto.dkim import (
    DkimKey,
    DkimSigner,
    DnsRecord,
    RecordPurpose,
    body_hash_relaxed,
    canonicalize_body_relaxed,
    canonicalize_header_relaxed,
    check_dkim_records,
    check_dmarc_records,
    check_dns,
    check_spf_records,
    dns_records,
    generate_key,
    parse_tag_list,
    spf_value,
    split_message,
)
from sealmail.net.dns import DnsLookupError

pytest.importorskip("nacl", reason="dkimpy verifies ed25519 only with PyNaCl: pip install pynacl")

DOMAIN = "clinic.example"
NOW = 1_700_000_000.0

SIMPLE = (
    b"From: Dr. Alice <alice@clinic.example>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: Lab results\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"Message-ID: <1@clinic.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Your results are ready.\r\n"
)


@pytest.fixture(scope="module")
def rsa_key() -> DkimKey:
    return generate_key(DOMAIN, "rsa2023", "rsa-sha256")


@pytest.fixture(scope="module")
def ed_key() -> DkimKey:
    return generate_key(DOMAIN, "ed2023", "ed25519-sha256")


@pytest.fixture(scope="module")
def dnsfunc(rsa_key: DkimKey, ed_key: DkimKey) -> Callable[..., bytes | None]:
    records = {f"{k.record_name}.".encode(): k.public_record().encode() for k in (rsa_key, ed_key)}

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


@pytest.fixture(scope="module")
def dual(rsa_key: DkimKey, ed_key: DkimKey) -> DkimSigner:
    return DkimSigner([ed_key, rsa_key], clock=lambda: NOW)


def signature_count(message: bytes) -> int:
    return len(re.findall(rb"(?mi)^dkim-signature:", message))


def verify_all(message: bytes, dnsfunc: Callable[..., bytes | None]) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of ``message``, top to bottom."""
    verdicts = []
    for index in range(signature_count(message)):
        try:
            verdicts.append(bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc)))
        except dkim.ValidationError:
            # dkimpy raises for a body hash mismatch where it returns False for b=.
            verdicts.append(False)
    return verdicts


def signature_headers(signed: bytes) -> list[dict[bytes, bytes]]:
    fields, _ = split_message(signed)
    return [dkim.util.parse_tag_value(value) for name, value in fields if name.lower() == b"dkim-signature"]


def strip_signatures(signed: bytes, count: int) -> bytes:
    """The bytes after the first ``count`` prepended DKIM-Signature fields."""
    rest = signed
    for _ in range(count):
        assert rest.startswith(b"DKIM-Signature:")
        end = re.search(rb"\r\n(?![ \t])", rest)
        assert end is not None
        rest = rest[end.end() :]
    return rest


# -- signatures verify ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_single_signature_verifies_with_dkimpy(
    algorithm: str, rsa_key: DkimKey, ed_key: DkimKey, dnsfunc: Callable[..., bytes | None]
) -> None:
    key = rsa_key if algorithm == "rsa" else ed_key
    signed = DkimSigner([key]).sign(SIMPLE)
    assert signature_count(signed) == 1
    assert verify_all(signed, dnsfunc) == [True]
    assert signature_headers(signed)[0][b"a"] == key.algorithm.encode()


def test_dual_signature_puts_one_field_per_key_in_key_order_and_both_verify(
    dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    signed = dual.sign(SIMPLE)
    tags = signature_headers(signed)
    assert [t[b"a"] for t in tags] == [b"ed25519-sha256", b"rsa-sha256"]
    assert [t[b"s"] for t in tags] == [b"ed2023", b"rsa2023"]
    # Both share the one body hash: same canonicalization, same hash algorithm.
    assert tags[0][b"bh"] == tags[1][b"bh"]
    assert verify_all(signed, dnsfunc) == [True, True]


def test_signed_message_after_the_signatures_is_byte_identical_to_the_input(dual: DkimSigner) -> None:
    message = SIMPLE.replace(b"Subject: Lab results", b"Subject:  Lab \t results \r\n   (folded)  ")
    signed = dual.sign(message)
    assert strip_signatures(signed, 2) == message


def test_signature_has_timestamp_no_length_tag_and_relaxed_canonicalization(dual: DkimSigner) -> None:
    for tags in signature_headers(dual.sign(SIMPLE)):
        assert tags[b"t"] == str(int(NOW)).encode()
        assert b"l" not in tags
        assert tags[b"c"] == b"relaxed/relaxed"
        assert tags[b"d"] == DOMAIN.encode()
        assert tags[b"v"] == b"1"


def test_h_lists_present_headers_and_oversigns_from(dual: DkimSigner) -> None:
    names = re.split(rb"\s*:\s*", signature_headers(dual.sign(SIMPLE))[0][b"h"])
    assert names.count(b"from") == 2  # one present, plus one for the absent second From
    assert names.count(b"message-id") == 2
    # Fields the message lacks and that are not oversigned are left out of h=.
    assert b"in-reply-to" not in names
    assert b"list-unsubscribe" not in names


def test_signature_field_lines_stay_within_78_columns(dual: DkimSigner) -> None:
    signed = dual.sign(SIMPLE)
    head = signed[: len(signed) - len(SIMPLE)]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))


def test_a_body_signed_again_reuses_its_hash_and_a_same_length_body_does_not(
    dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    # The remembered bodies are compared byte for byte: "ready" and "READY" have the same
    # length, so only a real comparison tells them apart.
    first = dual.sign(SIMPLE.replace(b"Subject: Lab results", b"Subject: first"))
    again = dual.sign(SIMPLE.replace(b"Subject: Lab results", b"Subject: again"))
    other = dual.sign(SIMPLE.replace(b"are ready.", b"are READY."))
    assert signature_headers(first)[0][b"bh"] == signature_headers(again)[0][b"bh"]
    assert signature_headers(other)[0][b"bh"] != signature_headers(first)[0][b"bh"]
    for signed in (first, again, other):
        assert verify_all(signed, dnsfunc) == [True, True]
    unremembered = DkimSigner(dual.keys, clock=lambda: NOW, remember_bodies=False)
    assert unremembered.sign(SIMPLE) == dual.sign(SIMPLE)


def test_each_header_set_and_timestamp_width_gets_its_own_field_layout(
    rsa_key: DkimKey, ed_key: DkimKey, dnsfunc: Callable[..., bytes | None]
) -> None:
    # A layout is kept per h= list and t= width; each must fold and verify on its own.
    with_cc = SIMPLE.replace(b"To: bob@example.org\r\n", b"To: bob@example.org\r\nCc: carol@example.org\r\n")
    without_date = re.sub(rb"Date: [^\r]*\r\n", b"", SIMPLE)
    for now in (NOW, 999_999_999.0, NOW):
        signer = DkimSigner([ed_key, rsa_key], clock=lambda now=now: now)
        for message in (SIMPLE, with_cc, without_date, with_cc):
            signed = signer.sign(message)
            assert verify_all(signed, dnsfunc) == [True, True]
            assert all(t[b"t"] == str(int(now)).encode() for t in signature_headers(signed))
            head = signed[: len(signed) - len(message)]
            assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    names = re.split(rb"\s*:\s*", signature_headers(DkimSigner([ed_key]).sign(with_cc))[0][b"h"])
    assert names.count(b"cc") == 2  # present once, plus the oversigned null instance


def test_header_names_holding_the_layout_placeholders_still_sign(
    ed_key: DkimKey, dnsfunc: Callable[..., bytes | None]
) -> None:
    # RFC 5322 §3.6.8: a field name is any printable ASCII but the colon, "#" and "%" too.
    odd = ("from", "x-" + "#" * 10, "x-" + "%" * 44)
    message = b"X-" + b"#" * 10 + b": a\r\nX-" + b"%" * 44 + b": b\r\n" + SIMPLE
    signed = DkimSigner([ed_key], headers=odd, oversign=(), clock=lambda: NOW).sign(message)
    assert verify_all(signed, dnsfunc) == [True]


def test_wire_form_message_is_signed_the_same_without_the_scan(dual: DkimSigner) -> None:
    assert dual.sign(SIMPLE, wire_form=True) == dual.sign(SIMPLE)


# -- awkward messages -------------------------------------------------------------------


def awkward_messages() -> dict[str, bytes]:
    long_line = b"x" * 990
    multipart_body = b"".join(
        b"--b1\r\nContent-Type: text/plain\r\n\r\n" + (b"line  with\t tabs and  spaces   \r\n" * 3200)
        for _ in range(2)
    )
    return {
        "folded_headers": (
            b"From: Alice\r\n  <alice@clinic.example>\r\nTo: a@example.org,\r\n\tb@example.org\r\n"
            b"Subject: a very\r\n   long\r\n\t subject\r\n\r\nbody\r\n"
        ),
        "trailing_whitespace": (
            b"From: alice@clinic.example \t\r\nSubject: trailing   \r\n\r\n"
            b"line one   \r\nline\ttwo\t\r\n \r\n\r\n"
        ),
        "missing_final_crlf": b"From: alice@clinic.example\r\nSubject: x\r\n\r\nno final line end",
        "long_lines": (
            b"From: alice@clinic.example\r\nSubject: " + b"s" * 900 + b"\r\n\r\n" + long_line + b"\r\n"
        ),
        "utf8_headers": (
            "From: Zoë Ñúñez <zoë@clinic.example>\r\nTo: 患者@example.org\r\n"
            "Subject: Résultats d’analyse — 検査結果\r\n\r\nBonjour\r\n"
        ).encode(),
        "large_multipart": (
            b"From: alice@clinic.example\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n' + multipart_body + b"--b1--\r\n"
        ),
        "empty_body": b"From: alice@clinic.example\r\nSubject: nothing\r\n\r\n",
        "headers_only": b"From: alice@clinic.example\r\nSubject: nothing\r\n",
        "blank_lines_only_body": b"From: alice@clinic.example\r\n\r\n\r\n\r\n\r\n",
        "two_to_fields": b"From: alice@clinic.example\r\nTo: a@example.org\r\nTo: b@example.org\r\n\r\nx\r\n",
    }


@pytest.mark.parametrize("name", sorted(awkward_messages()))
def test_awkward_message_verifies_and_is_unchanged(
    name: str, dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    message = awkward_messages()[name]
    signed = dual.sign(message)
    assert strip_signatures(signed, 2) == message
    assert verify_all(signed, dnsfunc) == [True, True]


def test_large_message_is_over_200_kb() -> None:
    assert len(awkward_messages()["large_multipart"]) > 200_000


def test_bare_lf_message_is_signed_as_the_smtp_client_sends_it(
    dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    # smtp_client turns every line end into CRLF (RFC 5321 §2.3.8); receivers verify that.
    message = b"From: alice@clinic.example\nSubject: unix  line ends\n\nhello  \nworld\n"
    signed = dual.sign(message)
    assert strip_signatures(signed, 2) == message
    assert verify_all(signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), dnsfunc) == [True, True]


def test_missing_final_crlf_after_whitespace_is_signed_as_transmitted(
    dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    # The SMTP client adds the final CRLF, making "x  " a line whose trailing WSP
    # relaxed canonicalization removes (RFC 6376 §3.4.4); sign what the receiver sees.
    message = b"From: alice@clinic.example\r\n\r\nends in spaces  "
    assert verify_all(dual.sign(message) + b"\r\n", dnsfunc) == [True, True]


# -- tampering --------------------------------------------------------------------------


def test_changed_body_fails_verification(dual: DkimSigner, dnsfunc: Callable[..., bytes | None]) -> None:
    signed = dual.sign(SIMPLE)
    assert verify_all(signed.replace(b"results are ready", b"results are fine"), dnsfunc) == [False, False]


def test_body_appended_after_signing_fails_verification(
    dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    # Without l= nothing can be appended (RFC 6376 §8.2).
    signed = dual.sign(SIMPLE)
    assert verify_all(signed + b"Click here.\r\n", dnsfunc) == [False, False]


def test_changed_signed_header_fails_verification(
    dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    signed = dual.sign(SIMPLE)
    assert verify_all(signed.replace(b"Subject: Lab results", b"Subject: Lab result"), dnsfunc) == [
        False,
        False,
    ]


def test_whitespace_only_changes_still_verify_under_relaxed(
    dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    signed = dual.sign(SIMPLE)
    refolded = signed.replace(b"Subject: Lab results", b"subject:   Lab\r\n\tresults  ")
    assert verify_all(refolded, dnsfunc) == [True, True]


def test_added_unsigned_header_still_verifies(dual: DkimSigner, dnsfunc: Callable[..., bytes | None]) -> None:
    signed = dual.sign(SIMPLE)
    assert verify_all(b"Received: from relay\r\n" + signed, dnsfunc) == [True, True]


@pytest.mark.parametrize("position", ["top", "bottom"])
def test_second_from_header_fails_verification(
    position: str, dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    signed = dual.sign(SIMPLE)
    forged = b"From: ceo@clinic.example\r\n"
    if position == "top":
        tampered = forged + signed
    else:
        tampered = signed.replace(b"\r\n\r\n", b"\r\n" + forged + b"\r\n", 1)
    assert verify_all(tampered, dnsfunc) == [False, False]


@pytest.mark.parametrize("header", [b"Subject: extra", b"Cc: eve@example.net", b"Reply-To: eve@example.net"])
def test_adding_an_oversigned_header_fails_verification(
    header: bytes, dual: DkimSigner, dnsfunc: Callable[..., bytes | None]
) -> None:
    signed = dual.sign(SIMPLE)
    tampered = signed.replace(b"\r\n\r\n", b"\r\n" + header + b"\r\n\r\n", 1)
    assert verify_all(tampered, dnsfunc) == [False, False]


# -- canonicalization against RFC 6376 §3.4.6 and dkimpy ----------------------------------


def test_relaxed_canonicalization_matches_rfc_6376_example() -> None:
    fields, body = split_message(b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n")
    assert b"".join(canonicalize_header_relaxed(n, v) for n, v in fields) == b"a:X\r\nb:Y Z\r\n"
    assert canonicalize_body_relaxed(body) == b" C\r\nD E\r\n"


# The shape of the body ``crypto.pgp.encrypt_pgp_mime`` builds (RFC 3156 §4).
_PGP_MIME_BODY = (
    b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n--b\r\n"
    b"Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n"
    b'\r\nVersion: 1\r\n\r\n--b\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n'
    b"\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n"
    + b"QUJD" * 16
    + b"\r\n"
    + (b"QUJD" * 16 + b"\r\n") * 120
    + b"QUJD\r\n-----END PGP MESSAGE-----\r\n\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"a\r\n",
        b"a \r\n\r\n \r\n",
        b"\t\tindented\r\nx  y\t z \t\r\n",
        b"base64AAAA\r\nBBBB\r\n",
        b"  \r\n",
        b"caf\xc3\xa9  au  lait\r\n",
        # More single spaces than the memchr scan visits, then a trailing one, a run, or
        # nothing to change at all (the substring searches decide).
        b"a b " * 100 + b"\r\n",
        b"a b\r\n" * 20 + b"c  d\r\n",
        b"a b\r\n" * 20 + b"c d \r\n",
        b"a b\r\n" * 20,
        # Spaces far apart (as in base64 with MIME lines), visited one by one, then a run.
        (b"Q" * 600 + b" x\r\n") * 20 + b"y  z\r\n",
        (b"Q" * 600 + b" x\r\n") * 80 + b"z \r\n",
        # A few single spaces (as in MIME part headers), then a trailing one.
        b"x y\r\n" * 10 + b"z \r\n",
        b"Content-Type: application/octet-stream\r\n\r\nQUJD\r\nREVG\r\n",
        # PGP/MIME: a dozen spaces at the top, none in the armour, a few in its END line;
        # every space is visited, so a run deep in the armour or at the end is still found.
        _PGP_MIME_BODY,
        _PGP_MIME_BODY.replace(b"QUJD\r\n", b"QU  JD\r\n", 1),
        _PGP_MIME_BODY[: len(_PGP_MIME_BODY) // 2]
        + b"QUJD \r\n"
        + _PGP_MIME_BODY[len(_PGP_MIME_BODY) // 2 :],
        _PGP_MIME_BODY + b"trailing \r\n",
    ],
)
def test_body_canonicalization_and_hash_agree_with_dkimpy(body: bytes) -> None:
    expected = dkim.canonicalization.Relaxed.canonicalize_body(body)
    assert canonicalize_body_relaxed(body) == expected
    assert body_hash_relaxed(body) == hashlib.sha256(expected).digest()


def test_body_canonicalization_agrees_with_dkimpy_on_random_whitespace() -> None:
    rng = random.Random(6376)
    alphabet = [b" ", b"  ", b"\t", b"a", b"bc", b"\r\n", b"\r\n\r\n", b" \t "]
    for _ in range(2000):
        body = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30))) + b"\r\n"
        expected = dkim.canonicalization.Relaxed.canonicalize_body(body)
        assert canonicalize_body_relaxed(body) == expected, body
        assert body_hash_relaxed(body) == hashlib.sha256(expected).digest(), body


def test_header_canonicalization_agrees_with_dkimpy_on_random_folding() -> None:
    rng = random.Random(8463)
    alphabet = [b" ", b"\t", b"x", b"Y", b"\r\n ", b"\r\n\t", b"\xc3\xa9", b":"]
    for _ in range(2000):
        value = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))
        name = rng.choice([b"Subject", b"SUBJECT ", b"subject\t"])
        [(dk_name, dk_value)] = dkim.canonicalization.Relaxed.canonicalize_headers([(name, value)])
        assert canonicalize_header_relaxed(name, value) == dk_name + b":" + dk_value, value


def test_split_message_rejects_a_leading_continuation_line() -> None:
    with pytest.raises(ValueError, match="continuation"):
        split_message(b" folded: no\r\n\r\n")


# -- errors and configuration -----------------------------------------------------------


def test_message_without_from_is_refused(dual: DkimSigner) -> None:
    with pytest.raises(ValueError, match="no From"):
        dual.sign(b"Subject: orphan\r\n\r\nbody\r\n")


def test_signer_refuses_configurations_that_break_dkim(ed_key: DkimKey) -> None:
    with pytest.raises(ValueError, match="From"):
        DkimSigner([ed_key], headers=("subject",), oversign=())
    with pytest.raises(ValueError, match="must not be signed"):
        DkimSigner([ed_key], headers=("from", "received"))
    with pytest.raises(ValueError, match="oversigned"):
        DkimSigner([ed_key], headers=("from",), oversign=("from", "subject"))
    with pytest.raises(ValueError, match="at least one key"):
        DkimSigner([])


def test_key_with_wrong_algorithm_or_weak_rsa_is_refused(ed_key: DkimKey) -> None:
    with pytest.raises(ValueError, match="does not match"):
        DkimSigner([DkimKey(DOMAIN, "x", "rsa-sha256", ed_key.private_key_pem)])
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="1024 bits"):
        DkimSigner([DkimKey(DOMAIN, "weak", "rsa-sha256", weak)])


def test_dkim_key_needs_ascii_domain_and_valid_selector(ed_key: DkimKey) -> None:
    with pytest.raises(ValueError, match="A-label"):
        DkimKey("klinik-zürich.example", "s1", "ed25519-sha256", ed_key.private_key_pem)
    with pytest.raises(ValueError, match="selector"):
        DkimKey(DOMAIN, "bad selector", "ed25519-sha256", ed_key.private_key_pem)


def test_generate_key_turns_an_idn_into_a_labels() -> None:
    key = generate_key("klinik-zürich.example", "s1", "ed25519-sha256")
    assert key.domain == "klinik-zürich".encode("idna").decode() + ".example"


def test_repr_never_shows_the_private_key(rsa_key: DkimKey) -> None:
    assert "PRIVATE" not in repr(rsa_key)


def test_public_records_follow_rfc_6376_and_rfc_8463(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    rsa_tags = parse_tag_list(rsa_key.public_record())
    assert (rsa_tags["v"], rsa_tags["k"]) == ("DKIM1", "rsa")
    public = serialization.load_der_public_key(base64.b64decode(rsa_tags["p"]))
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048
    ed_tags = parse_tag_list(ed_key.public_record())
    assert ed_tags["k"] == "ed25519"
    assert len(base64.b64decode(ed_tags["p"])) == 32


# -- DNS records to publish -------------------------------------------------------------


def test_dns_records_name_dkim_spf_and_dmarc(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    records = dns_records(
        DOMAIN, [ed_key, rsa_key], ["192.0.2.10", "2001:db8::/48", "relay.sealmail.example"],
        spf_includes=["_spf.provider.example"],
    )  # fmt: skip
    by_name = {r.name: r for r in records}
    assert by_name["ed2023._domainkey.clinic.example"].value == ed_key.public_record()
    assert by_name["rsa2023._domainkey.clinic.example"].purpose is RecordPurpose.DKIM
    assert by_name[DOMAIN].value == (
        "v=spf1 ip4:192.0.2.10 ip6:2001:db8::/48 a:relay.sealmail.example include:_spf.provider.example ~all"
    )
    assert by_name[f"_dmarc.{DOMAIN}"].value == (
        "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@clinic.example; adkim=s; aspf=r"
    )
    assert all(r.type == "TXT" for r in records)


def test_zone_value_splits_long_records_into_255_byte_strings(rsa_key: DkimKey) -> None:
    record = DnsRecord(rsa_key.record_name, "TXT", rsa_key.public_record(), RecordPurpose.DKIM)
    strings = re.findall(r'"([^"]*)"', record.zone_value)
    assert len(strings) == 2
    assert all(len(s) <= 255 for s in strings)
    assert "".join(strings) == record.value


def test_spf_without_hints_authorizes_mx_and_caps_lookups() -> None:
    assert spf_value() == "v=spf1 mx ~all"
    with pytest.raises(ValueError, match="10"):
        spf_value([f"relay{i}.example" for i in range(11)])


# -- checking published records ---------------------------------------------------------


def test_dkim_check_accepts_the_published_key_split_or_not(rsa_key: DkimKey) -> None:
    assert check_dkim_records(rsa_key, [rsa_key.public_record()]).ok
    spaced = rsa_key.public_record().replace("p=", "p= ").replace("k=rsa", "k = rsa")
    assert check_dkim_records(rsa_key, [spaced]).ok


@pytest.mark.parametrize(
    ("records", "detail"),
    [
        ([], "no TXT record"),
        (["v=DKIM1; p=AAAA", "v=DKIM1; p=BBBB"], "2 TXT records"),
        (["v=DKIM1; k=rsa; p="], "revoked"),
        (["v=DKIM1; k=ed25519; p=AAAA"], "k=ed25519"),
        (["v=DKIM1; k=rsa; p=AAAA"], "different public key"),
        (["v=DKIM2; p=AAAA"], "not DKIM1"),
        (["garbage"], "unparsable"),
    ],
)
def test_dkim_check_explains_what_is_wrong(rsa_key: DkimKey, records: list[str], detail: str) -> None:
    result = check_dkim_records(rsa_key, records)
    assert not result.ok
    assert detail in result.detail


@pytest.mark.parametrize(
    ("records", "ok", "detail"),
    [
        (["v=spf1 mx ~all", "google-site-verification=x"], True, "v=spf1 mx ~all"),
        ([], False, "no SPF"),
        (["v=spf1 mx ~all", "v=spf1 a -all"], False, "permerror"),
        (["v=spf1 +all"], False, "every host"),
        (["v=spf10 mx"], False, "no SPF"),
    ],
)
def test_spf_check(records: list[str], ok: bool, detail: str) -> None:
    result = check_spf_records(DOMAIN, records)
    assert (result.ok, result.purpose) == (ok, RecordPurpose.SPF)
    assert detail in result.detail


def test_spf_check_reports_missing_expected_terms() -> None:
    result = check_spf_records(DOMAIN, ["v=spf1 mx ~all"], expect=["ip4:192.0.2.10"])
    assert not result.ok
    assert "ip4:192.0.2.10" in result.detail


@pytest.mark.parametrize(
    ("records", "ok", "detail"),
    [
        (["v=DMARC1; p=reject; rua=mailto:r@clinic.example"], True, "p=reject"),
        (["v=DMARC1; p=none"], True, "monitoring only"),
        (["v=DMARC1; rua=mailto:r@clinic.example"], False, "no valid p="),
        (["v=DMARC1; p=reject", "v=DMARC1; p=none"], False, "2 DMARC records"),
        (["some other text"], False, "no DMARC"),
    ],
)
def test_dmarc_check(records: list[str], ok: bool, detail: str) -> None:
    result = check_dmarc_records(DOMAIN, records)
    assert (result.ok, result.name) == (ok, f"_dmarc.{DOMAIN}")
    assert detail in result.detail


class FakeResolver:
    """In-memory TXT answers; names in ``failing`` raise as a timeout would."""

    def __init__(self, zone: dict[str, list[str]], failing: frozenset[str] = frozenset()) -> None:
        self.zone = zone
        self.failing = failing

    async def txt(self, name: str) -> list[str]:
        if name in self.failing:
            raise DnsLookupError(f"TXT lookup for {name} failed: LifetimeTimeout")
        return list(self.zone.get(name, []))


def test_check_dns_reports_each_record(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    zone = {r.name: [r.value] for r in dns_records(DOMAIN, [ed_key, rsa_key])}
    results = asyncio.run(check_dns(DOMAIN, [ed_key, rsa_key], FakeResolver(zone)))
    assert [(r.purpose, r.ok) for r in results] == [
        (RecordPurpose.DKIM, True),
        (RecordPurpose.DKIM, True),
        (RecordPurpose.SPF, True),
        (RecordPurpose.DMARC, True),
    ]


def test_check_dns_turns_a_failed_lookup_into_a_failed_check(ed_key: DkimKey) -> None:
    zone = {r.name: [r.value] for r in dns_records(DOMAIN, [ed_key])}
    resolver = FakeResolver(zone, failing=frozenset({f"_dmarc.{DOMAIN}"}))
    results = asyncio.run(check_dns(DOMAIN, [ed_key], resolver))
    assert [r.ok for r in results] == [True, True, False]
    assert "try again" in results[-1].detail
