"""Delivery throughput on the OpenPGP path vs the TLS path (issue 3 benchmark).

N messages (5 KB, phi stream) are stored through the real intake service for one recipient
whose OpenPGP certificate is in the key directory (every message PGP/MIME-encrypted to it
and to the tenant archive key, then DKIM dual-signed), then ``--workers`` real
``sealmail serve --role worker`` processes deliver them over verified TLS to
``bench/sink.py`` (its own process).  The same run without a key measures the TLS path.

    .venv/bin/python bench/pgp_path.py [--messages 3000] [--workers 2] [--engine sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
import trustme  # noqa: E402

from sealmail.app import build_services  # noqa: E402
from sealmail.bootstrap import initialize  # noqa: E402
from sealmail.config import Settings  # noqa: E402
from sealmail.crypto import pgp  # noqa: E402
from sealmail.messages import compose  # noqa: E402
from sealmail.messages.schemas import MessageIn  # noqa: E402
from sealmail.tenancy.service import Principal  # noqa: E402

DOMAIN, MX = "patients.pgp-bench.org", "mx.pgp-bench.org"
PG = "postgresql://postgres@127.0.0.1:5432/test"


def state(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def run(method: str, args: argparse.Namespace) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"pgp-bench-{method}-"))
    ca = trustme.CA()
    cert = ca.issue_cert(MX)
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "mx.pem"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    sink_state = tmp / "sink.state"
    sink = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "sink.py"),
            "--cert",
            str(tmp / "mx.pem"),
            "--key",
            str(tmp / "mx.pem"),
            "--state",
            str(sink_state),
            "--domain",
            DOMAIN,
            "--mx",
            MX,
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        ready = (sink.stdout.readline() if sink.stdout else "").split()
        smtp_port, dns_port = int(ready[1]), int(ready[2])
        db_url = f"sqlite:///{tmp / 'sealmail.db'}" if args.engine == "sqlite" else PG
        env = {
            "SEALMAIL_HOME": str(tmp),
            "SEALMAIL_DATABASE_URL": db_url,
            "SEALMAIL_OUTBOUND_MODE": "mx",
            "SEALMAIL_DNS_NAMESERVERS": f'["127.0.0.1:{dns_port}"]',
            "SEALMAIL_MX_PORT": str(smtp_port),
            "SEALMAIL_TLS_CA_FILE": str(tmp / "ca.pem"),
            "SEALMAIL_MTA_STS_ENABLED": "false",
            "SEALMAIL_DANE_ENABLED": "false",
            "SEALMAIL_KEY_DISCOVERY": "off",
            "SEALMAIL_LOG_LEVEL": "warning",
            "SEALMAIL_CONFIG": str(tmp / "none.toml"),
        }
        os.environ.update(env)
        settings = Settings()
        if args.engine == "postgresql":
            engine = sa.create_engine(PG.replace("postgresql://", "postgresql+psycopg://"))
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        result = initialize(settings)
        services = build_services(settings)
        assert result.tenant_id is not None
        who = Principal(result.tenant_id, "bench", frozenset({"send"}))
        rcpt = f"pat@{DOMAIN}"
        if method == "pgp":
            _secret, public = pgp.generate_tenant_key(f"Pat <{rcpt}>")
            services.keydir.upload(result.tenant_id, public, "bench")
        text = ("The pathology report shows no abnormality. " * 120)[:5000]
        start = time.monotonic()
        for i in range(args.messages):
            body = MessageIn.model_validate(
                {
                    "from": "results@clinic.example",
                    "to": [rcpt],
                    "subject": f"Results {i}",
                    "text": text,
                    "stream": "phi",
                }
            )
            services.messages.submit(who, compose.from_message(body, "clinic.example", 1000))
        accept_s = time.monotonic() - start
        services.close()
        start = time.monotonic()
        for _ in range(args.workers):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sealmail.cli", "serve", "--role", "worker"],
                    env={**os.environ, **env},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + args.timeout
        first = None
        while state(sink_state) < args.messages and time.monotonic() < deadline:
            if first is None and state(sink_state) > 0:
                first = time.monotonic()
            time.sleep(0.05)
        done = state(sink_state)
        end = time.monotonic()
        return {
            "delivered": done,
            "from_spawn": done / (end - start),
            "steady": (done - 1) / (end - first) if first and end > first else 0.0,
            "accept": args.messages / accept_s,
        }
    finally:
        for proc in [*workers, sink]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    rows = []
    for method in ("tls", "pgp"):
        r = run(method, args)
        rows.append(
            f"| {method} | {args.engine} | {int(r['delivered'])} | {r['accept']:.0f} | "
            f"{r['from_spawn']:.0f} | {r['steady']:.0f} |"
        )
    table = (
        "| path | engine | delivered | intake msg/s (in-process) | delivery msg/s from spawn | "
        "steady msg/s |\n|---|---|---:|---:|---:|---:|\n" + "\n".join(rows)
    )
    print(table)
    out = ROOT / "bench" / "results" / f"pgp_path_{args.engine}.md"
    out.write_text(
        f"# Delivery on the OpenPGP path vs TLS ({args.workers} worker processes, 5 KB)\n\n" + table + "\n"
    )


if __name__ == "__main__":
    main()
