"""The built-in capture sink: a loopback SMTP server that keeps what it receives.

In the embedded default (``outbound_mode=capture``) every outbound message is delivered
here over STARTTLS with the development certificate, so a newcomer sees exactly what a
recipient would have received, and nothing leaves the machine.  ``sealmail captured`` and
``GET /v1/captured`` list it; the API shows a tenant only mail of its own messages, matched
through the ``X-Sealmail-Message-Id`` trace header the MTA adds.
"""

from __future__ import annotations

import email.parser
import email.policy
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.engine import Engine

from sealmail.domain.message import TRACE_HEADER
from sealmail.domain.page import Page
from sealmail.ids import new_id
from sealmail.smtpd.server import RequireTlsSMTP, offer_requiretls
from sealmail.store import db
from sealmail.store.tables import captured_messages, messages


def _trace_id(data: bytes) -> str | None:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    value = headers.get(TRACE_HEADER)
    return str(value).strip() if value else None


class _Handler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # A REQUIRETLS message (RFC 8689) is captured like any other: the sink promises what
        # a REQUIRETLS hop promises, over the development certificate the transport verifies.
        return offer_requiretls(session, hostname, responses)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        tls = session.ssl.get("cipher") if session.ssl else None
        row = {
            "id": new_id("cap"),
            "sealmail_message_id": _trace_id(data),
            "received_at": datetime.now(UTC),
            "mail_from": envelope.mail_from or "",
            "rcpt_to": list(envelope.rcpt_tos),
            "tls_version": tls[1] if tls else None,
            "size": len(data),
            "data": data,
        }
        with self.engine.begin() as conn:
            conn.execute(sa.insert(captured_messages).values(**row))
        return "250 2.0.0 Captured"


class _Controller(Controller):
    def factory(self) -> SMTP:
        return RequireTlsSMTP(self.handler, **self.SMTP_kwargs)


class CaptureSink:
    """Start/stop wrapper around an aiosmtpd controller (runs in its own thread)."""

    def __init__(self, engine: Engine, host: str, port: int, cert: Path, key: Path, hostname: str) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.controller = _Controller(
            _Handler(engine),
            hostname=host,
            port=port,
            server_hostname=hostname,
            tls_context=context,
            require_starttls=False,
            decode_data=False,
            data_size_limit=64 * 1024 * 1024,
            enable_SMTPUTF8=True,
        )

    def start(self) -> None:
        self.controller.start()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def stop(self) -> None:
        self.controller.stop()


@dataclass(frozen=True, slots=True)
class Captured:
    """One message the capture sink received (development: nothing leaves the machine)."""

    id: str
    message_id: str | None
    received_at: datetime
    mail_from: str
    rcpt_to: tuple[str, ...]
    tls_version: str | None
    size: int
    data: str  # the message as text (undecodable bytes replaced)

    @classmethod
    def from_row(cls, row: Any) -> Captured:
        return cls(
            id=row["id"],
            message_id=row["sealmail_message_id"],
            received_at=row["received_at"],
            mail_from=row["mail_from"],
            rcpt_to=tuple(row["rcpt_to"]),
            tls_version=row["tls_version"],
            size=row["size"],
            data=row["data"].decode("utf-8", "replace"),
        )


def list_for_tenant(engine: Engine, tenant_id: str, limit: int, cursor: str | None) -> Page[Captured]:
    q = (
        sa.select(captured_messages)
        .join(messages, messages.c.id == captured_messages.c.sealmail_message_id)
        .where(messages.c.tenant_id == tenant_id)
    )
    if cursor:
        q = q.where(captured_messages.c.id < cursor)
    with db.reader(engine) as conn:
        rows = conn.execute(q.order_by(captured_messages.c.id.desc()).limit(limit + 1)).mappings().all()
    page = rows[:limit]
    more = len(rows) > limit and bool(page)
    return Page(tuple(Captured.from_row(r) for r in page), page[-1]["id"] if more else None)


def list_all(engine: Engine, limit: int) -> list[Captured]:
    with db.reader(engine) as conn:
        rows = (
            conn.execute(sa.select(captured_messages).order_by(captured_messages.c.id.desc()).limit(limit))
            .mappings()
            .all()
        )
    return [Captured.from_row(r) for r in rows]
