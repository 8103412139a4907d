"""S/MIME cost per message: encrypt, sign, sign-then-encrypt, for 5 KB and 200 KB messages.

    .venv/bin/python bench/smime_bench.py [--seconds 1.0] [--runs 3]

Messages come from Sealmail's builder (text + HTML alternative; the 200 KB one carries a PDF
attachment).  Recipients are RSA-2048 and RSA-3072 certificates from a throwaway CA.  Each
figure is the median over ``--runs`` runs of CPU time per message (``time.process_time``),
single thread.  ``envelope DER only`` isolates ``PKCS7EnvelopeBuilder`` from the MIME
handling around it.  Results are printed and written to ``bench/results/smime.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealmail.crypto.smime import encrypt_smime, sign_smime
from sealmail.domain.addresses import parse_address
from sealmail.domain.message import Attachment, Draft, build

BENCH = Path(__file__).resolve().parent
NOW = dt.datetime.now(dt.UTC)


def _issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, key: rsa.RSAPrivateKey
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("bench@example.org")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _message(size: int) -> bytes:
    text_size = min(size, 4 * 1024)
    draft = Draft(
        sender=parse_address("results@clinic.example", "from"),
        to=(parse_address("bench@example.org", "to"),),
        subject="Lab results",
        text=("Your results are ready. " * (text_size // 24 + 1))[: text_size // 2],
        html="<p>" + ("Your results are ready. " * (text_size // 24 + 1))[: text_size // 2] + "</p>",
        attachments=(
            (Attachment("results.pdf", "application/pdf", os.urandom((size - text_size) * 3 // 4)),)
            if size > text_size
            else ()
        ),
    )
    return build(draft, "clinic.example").raw


def _envelope_only(raw: bytes, cert: x509.Certificate) -> bytes:
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(raw)
        .add_recipient(cert)
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def _sign_then_encrypt(raw: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    return encrypt_smime(sign_smime(raw, cert, key), [cert])


def _cpu_per_call(fn: Callable[[], object], seconds: float, runs: int) -> float:
    """Median CPU milliseconds per call over ``runs`` runs of about ``seconds`` each."""
    fn()  # warm up
    results = []
    for _ in range(runs):
        count, start = 0, time.process_time()
        while (elapsed := time.process_time() - start) < seconds:
            fn()
            count += 1
        results.append(elapsed / count * 1000)
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each timed run")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    args = parser.parse_args()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    keys = {bits: rsa.generate_private_key(public_exponent=65537, key_size=bits) for bits in (2048, 3072)}
    certs = {bits: _issue(ca_key, ca_name, key) for bits, key in keys.items()}
    archive = _issue(ca_key, ca_name, rsa.generate_private_key(public_exponent=65537, key_size=3072))
    messages = {"5 KB": _message(5 * 1024), "200 KB": _message(200 * 1024)}

    rows: list[tuple[str, str, float]] = []
    for label, raw in messages.items():
        label = f"{label} ({len(raw):,} B)"
        cases: list[tuple[str, Callable[[], object]]] = [
            (f"encrypt_smime, RSA-{bits}", partial(encrypt_smime, raw, [cert]))
            for bits, cert in certs.items()
        ]
        cases += [
            (
                "encrypt_smime, RSA-3072 + archive RSA-3072",
                partial(encrypt_smime, raw, [certs[3072]], archive_cert=archive),
            ),
            ("envelope DER only (PKCS7EnvelopeBuilder), RSA-3072", partial(_envelope_only, raw, certs[3072])),
            ("sign_smime, RSA-3072 signer", partial(sign_smime, raw, certs[3072], keys[3072])),
            ("sign then encrypt, RSA-3072 both", partial(_sign_then_encrypt, raw, certs[3072], keys[3072])),
        ]
        for name, fn in cases:
            ms = _cpu_per_call(fn, args.seconds, args.runs)
            rows.append((label, name, ms))
            print(f"{label:22} {name:52} {ms:8.3f} ms", flush=True)

    lines = [
        "# S/MIME benchmark",
        "",
        f"`bench/smime_bench.py`, {time.strftime('%Y-%m-%d')}: Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__}, {platform.machine()}, {os.cpu_count()} CPUs. "
        f"CPU time per message, one thread, median of {args.runs} runs of {args.seconds:g} s; "
        f"load average at the end {os.getloadavg()[0]:.1f} (shared machine: expect noise).",
        "AES-256-CBC EnvelopedData, RSA PKCS#1 v1.5 key transport; SHA-256 detached signatures.",
        "",
        "| message | operation | CPU ms / message | messages / s / core |",
        "|---|---|---:|---:|",
        *(f"| {label} | {name} | {ms:.3f} | {1000 / ms:,.0f} |" for label, name, ms in rows),
        "",
        "Budget reference (docs/research/performance.md): 7.2 ms of CPU per message for everything.",
        "",
    ]
    out = BENCH / "results" / "smime.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"written to {out.relative_to(BENCH.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
