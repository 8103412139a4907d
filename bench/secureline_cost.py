"""CPU cost per message of each SecureLine method, 5 KB and 200 KB (issue 3 benchmark).

Each method is measured as the worker runs it: build what is sent (nothing extra for TLS,
PGP/MIME to the recipient + the tenant archive key, S/MIME EnvelopedData, or the PHI-free
portal notice) and then DKIM-sign it (Ed25519 + RSA-2048 dual signatures).  CPU time
(process_time) per message; run on an otherwise idle machine for stable figures.

    .venv/bin/python bench/secureline_cost.py [--n 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.smime_ca import SmimeCA

from sealmail.crypto import dkim, pgp, smime
from sealmail.domain.portal_notice import build_notice


def message(size: int) -> bytes:
    head = (
        b"From: Results <results@clinic.example>\r\nTo: pat@example.org\r\n"
        b"Subject: Your results\r\nDate: Wed, 25 Nov 2026 09:00:00 +0000\r\n"
        b"Message-ID: <bench@clinic.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = b"The pathology report for the sample taken on the 3rd shows no abnormality.\r\n"
    return head + line * (size // len(line))


def measure(fn: Callable[[], bytes], n: int) -> float:
    runs = []
    for _ in range(3):
        start = time.process_time()
        for _ in range(n):
            fn()
        runs.append((time.process_time() - start) / n * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "secureline.md",
        help="where the table is written (a smoke run writes elsewhere, not over the recorded figures)",
    )  # fmt: skip
    args = parser.parse_args()
    signer = dkim.DkimSigner(
        [
            dkim.generate_key("clinic.example", "ed", "ed25519-sha256"),
            dkim.generate_key("clinic.example", "rsa", "rsa-sha256"),
        ]
    )
    _secret, recipient_pub = pgp.generate_tenant_key("Pat <pat@example.org>")
    _asecret, archive_pub = pgp.generate_tenant_key("Archive <archive@clinic.example>")
    recipient = pgp.load_cert(recipient_pub)
    archive = pgp.load_cert(archive_pub)
    ca = SmimeCA(Path(tempfile.mkdtemp()))
    smime_cert = ca.issue("pat@example.org").cert
    rows = []
    for size in (5 * 1024, 200 * 1024):
        raw = message(size)
        n = args.n if size < 100_000 else max(20, args.n // 10)
        costs = {
            "tls (DKIM only)": lambda raw=raw: signer.sign(raw),
            "pgp (+ archive) + DKIM": lambda raw=raw: signer.sign(
                pgp.encrypt_pgp_mime(raw, [recipient], archive_cert=archive)
            ),
            "smime + DKIM": lambda raw=raw: signer.sign(
                smime.encrypt_smime(raw, [smime_cert], protect_subject=True)
            ),
            "portal notice + DKIM": lambda: signer.sign(
                build_notice(
                    organization="Demo Clinic",
                    sender="results@clinic.example",
                    recipient="pat@example.org",
                    link="https://portal.example/p/" + "x" * 43,
                    expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
                    message_id_domain="clinic.example",
                ).raw
            ),
        }
        for name, fn in costs.items():
            rows.append((name, size // 1024, measure(fn, n)))
    lines = ["| method | size | CPU ms/message | messages/s on one core |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {kb} KB | {ms:.2f} | {1000 / ms:,.0f} |" for name, kb, ms in rows]
    table = "\n".join(lines)
    print(table)
    args.out.write_text("# SecureLine cost per method\n\n" + table + "\n")


if __name__ == "__main__":
    main()
