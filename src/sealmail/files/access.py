"""The recipient's side of file shares: which files a signed-in portal reader may fetch.

Access follows the portal hold of the message that carried the file: the same sign-in
(code or passphrase), and recalled, expired or shredded messages close their files too.
Another tenant's or another address's file is simply absent, like a missing one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.files.reading import OpenedFile
from sealmail.files.service import FileShares, Status
from sealmail.files.tables import file_shares
from sealmail.portal.access import Hold, LinkState, Session, hold_query, to_hold
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import portal_messages


class ReaderFiles:
    def __init__(self, shares: FileShares) -> None:
        self.shares = shares
        self.engine = shares.engine

    def _hold(self, conn: Connection, session: Session, message_id: str) -> Hold | None:
        rows = conn.execute(
            hold_query().where(
                portal_messages.c.tenant_id == session.tenant_id,
                portal_messages.c.message_id == message_id,
                sa.func.lower(portal_messages.c.address) == session.address,
            )
        ).all()
        now = self.shares.now()
        for row in rows:
            hold = to_hold(row)
            if session.may_open(hold) and hold.state(now) is LinkState.OPEN:
                return hold
        return None

    def get(self, session: Session, file_id: str) -> tuple[OpenedFile, Hold] | None:
        """The file and the hold that grants it, or None when this reader may not have it."""
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(file_shares).where(
                    file_shares.c.id == file_id,
                    file_shares.c.tenant_id == session.tenant_id,
                    file_shares.c.status == Status.READY,
                    file_shares.c.message_id.is_not(None),
                )
            ).first()
            if row is None or (row.expires_at is not None and row.expires_at <= self.shares.now()):
                return None
            hold = self._hold(conn, session, row.message_id)
        if hold is None:
            return None
        return self.shares.opened(row), hold

    def list(self, session: Session) -> list[OpenedFile]:
        """Every file this reader may download now, newest first."""
        with db.reader(self.engine) as conn:
            ids = conn.execute(
                sa.select(file_shares.c.id)
                .join(
                    portal_messages,
                    sa.and_(
                        portal_messages.c.message_id == file_shares.c.message_id,
                        portal_messages.c.tenant_id == file_shares.c.tenant_id,
                    ),
                )
                .where(
                    file_shares.c.tenant_id == session.tenant_id,
                    file_shares.c.status == Status.READY,
                    sa.func.lower(portal_messages.c.address) == session.address,
                )
                .order_by(file_shares.c.created_at.desc())
            ).scalars()
            wanted = list(dict.fromkeys(ids))
        found = [self.get(session, i) for i in wanted]
        return [f[0] for f in found if f is not None]

    def record_download(
        self, session: Session, hold: Hold, opened: OpenedFile, first: int, length: int
    ) -> None:
        """Audit every download request; emit the portal event once per download from byte 0.

        Resumed ranges are audited too (a HIPAA access log must show each disclosure) but
        do not repeat the event a sender's webhook would count as a new download.
        """
        details: dict[str, Any] = {"hold": hold.id, "offset": first, "length": length}
        with self.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.FILE_DOWNLOADED,
                actor=session.actor,
                tenant_id=opened.tenant_id,
                target=opened.id,
                details=details,
            )
            if first == 0:
                ev.emit(
                    conn,
                    tenant_id=hold.tenant_id,
                    message_id=hold.message_id,
                    type_=ev.EventType.PORTAL_ATTACHMENT_DOWNLOADED,
                    recipient_id=hold.recipient_id,
                    recipient=hold.address,
                    data={"portal_message_id": hold.id, "file_id": opened.id},
                    at=self.shares.now(),
                )
