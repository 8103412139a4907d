"""The product as a newcomer runs it: `sealmail init`, `sealmail serve`, the CLI."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import sqlite3
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.serve_harness import Running, alive, children, cli, serving
from tests.support.ports import unused_port
from tests.support.waiting import wait_until

# Each test starts several interpreters; on a busy shared machine that alone takes a minute.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with serving(tmp_path) as r:
        yield r


def test_init_creates_a_private_master_key_and_dev_certificates(running: Running) -> None:
    key = running.home / "master.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (running.home / "tls" / "server.crt").exists()
    assert stat.S_IMODE((running.home / "tls" / "server.key").stat().st_mode) == 0o600
    again = cli(running.env, "init")  # idempotent: no second tenant, no new key
    assert "API key" not in again.stdout


def test_first_message_reaches_the_capture_sink_over_tls(running: Running) -> None:
    headers = {"Authorization": f"Bearer {running.api_key}"}
    resp = httpx.post(
        f"{running.api}/v1/messages",
        headers=headers,
        json={
            "from": "Clinic <noreply@clinic.example>",
            "to": ["patient@example.net"],
            "subject": "Your results are ready",
            "text": "Hello from Sealmail",
            "stream": "phi",
        },
    )
    assert resp.status_code == 202, resp.text
    mid = resp.json()["id"]

    def delivered() -> bool:
        got = httpx.get(f"{running.api}/v1/messages/{mid}", headers=headers).json()
        return bool(got["recipients"][0]["status"] == "delivered")

    wait_until(delivered, timeout=20, message="first message not delivered to the capture sink")
    got = httpx.get(f"{running.api}/v1/messages/{mid}", headers=headers).json()
    attempt = got["recipients"][0]["attempts"][0]
    assert attempt["tls"]["verified"] is True  # phi: require_verified against the dev CA
    captured = httpx.get(f"{running.api}/v1/captured", headers=headers).json()["data"]
    assert captured[0]["message_id"] == mid
    assert "Hello from Sealmail" in captured[0]["data"]
    listing = cli(running.env, "captured")
    assert mid in listing.stdout
    # The full view prints the message verbatim: no console markup or emoji codes applied
    # (DKIM's "h=…:subject:date:…" once came out with a calendar emoji).
    full = cli(running.env, "captured", "--full", "--limit", "1").stdout
    assert "DKIM-Signature:" in full and ":date:" in full
    assert "\N{CALENDAR}" not in full


def test_smtp_submission_is_delivered_like_an_api_message(running: Running) -> None:
    created = cli(running.env, "smtp-credentials", "create").stdout
    user = re.search(r"username: (\S+)", created)
    password = re.search(r"password: (\S+)", created)
    assert user and password
    context = ssl.create_default_context(cafile=str(running.home / "tls" / "ca.crt"))
    with smtplib.SMTP("127.0.0.1", running.smtp_port, local_hostname="ehr.test", timeout=10) as smtp:
        smtp.starttls(context=context)
        smtp.login(user.group(1), password.group(1))
        smtp.sendmail(
            "noreply@clinic.example",
            ["patient@example.net"],
            b"From: noreply@clinic.example\r\nTo: patient@example.net\r\n"
            b"Subject: Over SMTP\r\n\r\nBody over SMTP\r\n",
        )
    headers = {"Authorization": f"Bearer {running.api_key}"}

    def captured() -> bool:
        rows = httpx.get(f"{running.api}/v1/captured", headers=headers).json()["data"]
        return any("Body over SMTP" in r["data"] for r in rows)

    wait_until(captured, timeout=20, message="SMTP-submitted message never reached the sink")


def test_keys_rotate_keeps_content_readable_and_audit_verifies(running: Running) -> None:
    headers = {"Authorization": f"Bearer {running.api_key}"}
    mid = httpx.post(
        f"{running.api}/v1/messages",
        headers=headers,
        json={
            "from": "noreply@clinic.example",
            "to": ["p@example.net"],
            "subject": "Before rotation",
            "text": "x",
        },
    ).json()["id"]
    old = (running.home / "master.key").read_text()
    out = cli(running.env, "keys", "rotate").stdout
    assert "tenant keys rewrapped" in out
    assert (running.home / "master.key").read_text() != old
    tenant = cli(running.env, "keys", "rotate", "--tenant", _tenant_id(running), "--grace", "0").stdout
    assert "message keys rewrapped" in tenant
    content = httpx.get(f"{running.api}/v1/messages/{mid}/content", headers=headers)
    assert content.status_code == 200, content.text
    assert content.json()["subject"] == "Before rotation"
    verified = cli(running.env, "audit", "verify")
    assert "intact" in verified.stdout


def _tenant_id(running: Running) -> str:
    out = cli(running.env, "tenants", "list").stdout
    found = re.search(r"ten_[0-9A-Z]+", out)
    assert found, out
    return found.group(0)


def test_audit_verify_names_the_tampered_entry(running: Running) -> None:
    db = sqlite3.connect(running.home / "sealmail.db")
    with db:
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    db.close()
    result = cli(running.env, "audit", "verify", check=False)
    assert result.returncode == 1
    assert "entry 2 was edited" in result.stderr


def test_sigterm_stops_every_role_cleanly(running: Running) -> None:
    kids = children(running.proc.pid)  # the worker child, on a machine with 2+ cores
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(15) == 0
    assert not [pid for pid in kids if alive(pid)]


def test_invalid_configuration_refuses_to_start_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMAIL_")}
    env.update(
        {
            "SEALMAIL_HOME": str(tmp_path),
            "SEALMAIL_API_PORT": "eighty",
            "SEALMAIL_CONFIG": str(tmp_path / "none.toml"),
        }
    )
    result = cli(env, "serve", check=False)
    assert result.returncode == 2
    assert "SEALMAIL_API_PORT" in result.stderr
    toml = tmp_path / "sealmail.toml"
    toml.write_text('outbound_mode = "carrier-pigeon"\n')
    env.pop("SEALMAIL_API_PORT")
    env["SEALMAIL_CONFIG"] = str(toml)
    result = cli(env, "serve", check=False)
    assert result.returncode == 2
    assert "SEALMAIL_OUTBOUND_MODE" in result.stderr


def test_serve_without_init_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMAIL_")}
    env.update({"SEALMAIL_HOME": str(tmp_path / "empty"), "SEALMAIL_CONFIG": str(tmp_path / "none.toml")})
    result = cli(env, "serve", check=False)
    assert result.returncode == 2
    assert "sealmail init" in result.stderr


@pytest.mark.parametrize(
    ("setting", "roles"),
    [
        ("SEALMAIL_SMTP_INBOUND_PORT", ()),
        ("SEALMAIL_API_PORT", ()),
        ("SEALMAIL_PORTAL_PORT", ("--role", "api", "--role", "portal")),  # a portal of its own
    ],
)
def test_a_port_already_in_use_is_an_error_that_names_the_setting(
    tmp_path: Path, setting: str, roles: tuple[str, ...]
) -> None:
    """Each listener's port: SMTP's, and the HTTP servers' (uvicorn binding its own ended in
    a SystemExit inside its task and a traceback; a taken portal port went unnoticed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMAIL_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = {
            name: str(unused_port())
            for name in (
                "SEALMAIL_API_PORT",
                "SEALMAIL_PORTAL_PORT",
                "SEALMAIL_CAPTURE_PORT",
                "SEALMAIL_SMTP_PORT",
                "SEALMAIL_SMTP_INBOUND_PORT",
            )
        }
        ports[setting] = str(taken.getsockname()[1])
        env.update(
            {
                "SEALMAIL_HOME": str(tmp_path / "var"),
                "SEALMAIL_CONFIG": str(tmp_path / "none.toml"),
                **ports,
                "SEALMAIL_ARGON2_MEMORY_KIB": "1024",
                "SEALMAIL_ARGON2_TIME_COST": "1",
                "SEALMAIL_OSV_REFRESH_MINUTES": "0",  # hermetic: no fetch from api.osv.dev
            }
        )
        cli(env, "init")
        result = cli(env, "serve", *roles, check=False)
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert "address already in use" in said.lower()
    assert setting in said
    assert "Traceback" not in said
