"""Webhook endpoints: the one write path for creating, changing, rotating and replaying.

Every change writes its row and its audit entry in one transaction.  Signing secrets are
sealed under the tenant key before they touch the database and are returned in clear
exactly once, to the caller that created or rotated them.  Every query is filtered by
tenant, so another tenant's endpoint or delivery is simply "not found".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.net.destination import DestinationVetter
from sealmail.net.http_client import redact_url
from sealmail.store import db
from sealmail.store.tables import events
from sealmail.tenancy.keyring import Keyring
from sealmail.webhooks import outbox, signing
from sealmail.webhooks.payload import TEST_EVENT_TYPE
from sealmail.webhooks.rules import EndpointChanges as EndpointChanges
from sealmail.webhooks.rules import EndpointSpec as EndpointSpec
from sealmail.webhooks.rules import carries_phi as carries_phi
from sealmail.webhooks.rules import check_endpoint
from sealmail.webhooks.states import DeliveryStatus, EndpointStatus
from sealmail.webhooks.tables import (
    webhook_attempts,
    webhook_cursors,
    webhook_deliveries,
    webhook_endpoints,
)
from sealmail.webhooks.views import Delivery, Endpoint

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)


class WebhookEndpoints:
    """Tenant-scoped management of endpoints and their deliveries."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        *,
        allow_insecure_http: bool = False,
        vetter: DestinationVetter | None = None,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.allow_insecure_http = allow_insecure_http
        self.vetter = vetter

    # -- secrets -----------------------------------------------------------------------------
    def _seal(self, tenant_id: str, secret: str) -> dict[str, Any]:
        secret_id = new_id("whs")
        key_id, wrapped, blob = self.keyring.seal(tenant_id, secret_id, secret.encode())
        return {
            "secret_id": secret_id,
            "secret_key_id": key_id,
            "secret_wrapped_key": wrapped,
            "secret": blob,
        }

    def live_secrets(self, row: Any, now: datetime) -> list[str]:
        """The secrets to sign with: the current one, and the previous during its overlap."""
        found = [
            self.keyring.open(
                row.tenant_id, row.secret_id, row.secret_key_id, row.secret_wrapped_key, row.secret
            ).decode()
        ]
        expires = row.previous_secret_expires_at
        if row.previous_secret is not None and expires is not None and expires > now:
            found.append(
                self.keyring.open(
                    row.tenant_id,
                    row.previous_secret_id,
                    row.previous_secret_key_id,
                    row.previous_secret_wrapped_key,
                    row.previous_secret,
                ).decode()
            )
        return found

    # -- reads -------------------------------------------------------------------------------
    def _row(self, conn: Connection, tenant_id: str, endpoint_id: str) -> Any:
        row = conn.execute(
            sa.select(webhook_endpoints).where(
                webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.tenant_id == tenant_id
            )
        ).first()
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}")
        return row

    def row(self, tenant_id: str, endpoint_id: str) -> Any:
        with db.reader(self.engine) as conn:
            return self._row(conn, tenant_id, endpoint_id)

    def get(self, tenant_id: str, endpoint_id: str) -> Endpoint:
        return Endpoint.from_row(self.row(tenant_id, endpoint_id))

    def list_endpoints(self, tenant_id: str) -> list[Endpoint]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(webhook_endpoints)
                .where(webhook_endpoints.c.tenant_id == tenant_id)
                .order_by(webhook_endpoints.c.id)
            ).all()
        return [Endpoint.from_row(r) for r in rows]

    def deliveries(
        self, tenant_id: str, endpoint_id: str, *, limit: int = 50, before: str | None = None
    ) -> list[Delivery]:
        """Newest first, each with its log of attempts; ``before`` pages by delivery id."""
        d = webhook_deliveries.c
        with db.reader(self.engine) as conn:
            self._row(conn, tenant_id, endpoint_id)
            query = sa.select(webhook_deliveries).where(
                d.tenant_id == tenant_id, d.endpoint_id == endpoint_id
            )
            if before:
                query = query.where(d.id < before)
            rows = conn.execute(query.order_by(d.id.desc()).limit(limit)).all()
            log: dict[str, list[Any]] = {r.id: [] for r in rows}
            if rows:
                for a in conn.execute(
                    sa.select(webhook_attempts)
                    .where(webhook_attempts.c.tenant_id == tenant_id, webhook_attempts.c.delivery_id.in_(log))
                    .order_by(webhook_attempts.c.at, webhook_attempts.c.id)
                ):
                    log[a.delivery_id].append(a)
        return [Delivery.from_row(r, log[r.id]) for r in rows]

    # -- writes ------------------------------------------------------------------------------
    def create(self, tenant_id: str, spec: EndpointSpec, actor: str) -> tuple[Endpoint, str]:
        """Returns the endpoint and its secret, which is not retrievable afterwards."""
        check_endpoint(
            spec.url,
            spec.streams,
            spec.event_types,
            allow_insecure_http=self.allow_insecure_http,
            vetter=self.vetter,
        )
        secret = signing.new_secret()
        now = datetime.now(UTC)
        endpoint_id = new_id("whe")
        row = {
            "id": endpoint_id,
            "tenant_id": tenant_id,
            "url": spec.url,
            "description": spec.description,
            "event_types": sorted(set(spec.event_types)),
            "streams": sorted(set(spec.streams)),
            "payload": spec.payload,
            "status": EndpointStatus.ACTIVE,
            "consecutive_failures": 0,
            "created_at": now,
            "updated_at": now,
            **self._seal(tenant_id, secret),
        }
        with db.write(self.engine) as conn:
            conn.execute(sa.insert(webhook_endpoints).values(**row))
            self._audit(
                conn, AuditAction.WEBHOOK_ENDPOINT_CREATED, actor, tenant_id, endpoint_id, self._facts(row)
            )
            created = self._row(conn, tenant_id, endpoint_id)
        return Endpoint.from_row(created), secret

    def update(self, tenant_id: str, endpoint_id: str, changes: EndpointChanges, actor: str) -> Endpoint:
        now = datetime.now(UTC)
        with db.write(self.engine) as conn:
            current = self._row(conn, tenant_id, endpoint_id)
            values: dict[str, Any] = {}
            if changes.url is not None:
                values["url"] = changes.url
            if changes.event_types is not None:
                values["event_types"] = sorted(set(changes.event_types))
            if changes.streams is not None:
                values["streams"] = sorted(set(changes.streams))
            if changes.payload is not None:
                values["payload"] = changes.payload
            if changes.description is not None:
                values["description"] = changes.description
            if changes.status is not None and changes.status != current.status:
                values["status"] = changes.status
                values["disabled_reason"] = (
                    "disabled by the tenant" if changes.status is EndpointStatus.DISABLED else None
                )
                if changes.status is EndpointStatus.ACTIVE:
                    # A fresh start: the failure streak that disabled it is history.
                    values.update(consecutive_failures=0, failing_since=None)
            check_endpoint(
                values.get("url", current.url),
                values.get("streams", current.streams),
                values.get("event_types", current.event_types),
                allow_insecure_http=self.allow_insecure_http,
                vetter=self.vetter if "url" in values else None,
            )
            if values:
                values["updated_at"] = now
                conn.execute(
                    sa.update(webhook_endpoints)
                    .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.tenant_id == tenant_id)
                    .values(**values)
                )
                self._audit(
                    conn,
                    AuditAction.WEBHOOK_ENDPOINT_UPDATED,
                    actor,
                    tenant_id,
                    endpoint_id,
                    self._facts(values),
                )
            return Endpoint.from_row(self._row(conn, tenant_id, endpoint_id))

    def delete(self, tenant_id: str, endpoint_id: str, actor: str) -> None:
        """Remove the endpoint, its secrets, deliveries, attempt log and cursor."""
        with db.write(self.engine) as conn:
            row = self._row(conn, tenant_id, endpoint_id)
            conn.execute(sa.delete(webhook_attempts).where(webhook_attempts.c.endpoint_id == endpoint_id))
            conn.execute(sa.delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id))
            conn.execute(sa.delete(webhook_cursors).where(webhook_cursors.c.endpoint_id == endpoint_id))
            conn.execute(sa.delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
            self._audit(
                conn,
                AuditAction.WEBHOOK_ENDPOINT_DELETED,
                actor,
                tenant_id,
                endpoint_id,
                {"url": redact_url(row.url)},
            )

    def rotate_secret(
        self, tenant_id: str, endpoint_id: str, actor: str, overlap: timedelta = DEFAULT_OVERLAP
    ) -> tuple[Endpoint, str]:
        """A new current secret; the old one keeps signing for ``overlap`` (Standard Webhooks
        "Key rotation": receivers switch at their pace while both signatures are sent)."""
        if not timedelta(0) <= overlap <= MAX_OVERLAP:
            raise ValidationFailed([{"field": "overlap_seconds", "message": "between 0 and 7 days"}])
        secret = signing.new_secret()
        sealed = self._seal(tenant_id, secret)
        now = datetime.now(UTC)
        with db.write(self.engine) as conn:
            old = self._row(conn, tenant_id, endpoint_id)
            conn.execute(
                sa.update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.tenant_id == tenant_id)
                .values(
                    previous_secret_id=old.secret_id,
                    previous_secret_key_id=old.secret_key_id,
                    previous_secret_wrapped_key=old.secret_wrapped_key,
                    previous_secret=old.secret,
                    previous_secret_expires_at=now + overlap,
                    updated_at=now,
                    **sealed,
                )
            )
            self._audit(
                conn,
                AuditAction.WEBHOOK_ENDPOINT_SECRET_ROTATED,
                actor,
                tenant_id,
                endpoint_id,
                {"overlap_seconds": int(overlap.total_seconds())},
            )
            return Endpoint.from_row(self._row(conn, tenant_id, endpoint_id)), secret

    def replay_delivery(self, tenant_id: str, delivery_id: str, actor: str) -> Delivery:
        """Send one delivery again from the start of the schedule, with the same webhook-id."""
        d = webhook_deliveries.c
        now = datetime.now(UTC)
        with db.write(self.engine) as conn:
            found = conn.execute(
                sa.update(webhook_deliveries)
                .where(d.id == delivery_id, d.tenant_id == tenant_id)
                .values(**_reset(now))
            ).rowcount
            if not found:
                raise NotFound(f"no webhook delivery {delivery_id}")
            row = conn.execute(sa.select(webhook_deliveries).where(d.id == delivery_id)).one()
            self._audit(
                conn,
                AuditAction.WEBHOOK_DELIVERY_REPLAYED,
                actor,
                tenant_id,
                row.endpoint_id,
                {"delivery_id": delivery_id},
            )
        return Delivery.from_row(row)

    def replay_since(self, tenant_id: str, endpoint_id: str, since: datetime, actor: str) -> int:
        """Queue every matching event since ``since`` again (creating deliveries that were
        never made, e.g. while the endpoint was disabled); returns how many are queued."""
        now = datetime.now(UTC)
        floor = outbox.id_floor("evt", since)
        with db.write(self.engine) as conn:
            ep = self._row(conn, tenant_id, endpoint_id)
            after = floor
            while True:
                rows = conn.execute(
                    sa.select(events.c.id, events.c.type)
                    .select_from(outbox.events_from())
                    .where(events.c.id > after, events.c.created_at >= since, *outbox.event_filter(ep))
                    .order_by(events.c.id)
                    .limit(500)
                ).all()
                outbox.insert_deliveries(conn, endpoint_id, tenant_id, rows, now)
                if len(rows) < 500:
                    break
                after = rows[-1].id
            d = webhook_deliveries.c
            queued = int(
                conn.execute(
                    sa.update(webhook_deliveries)
                    .where(
                        d.tenant_id == tenant_id,
                        d.endpoint_id == endpoint_id,
                        d.event_id >= floor,
                        d.event_type != TEST_EVENT_TYPE,
                    )
                    .values(**_reset(now))
                ).rowcount
                or 0
            )
            self._audit(
                conn,
                AuditAction.WEBHOOK_ENDPOINT_REPLAYED,
                actor,
                tenant_id,
                endpoint_id,
                {"since": since.isoformat(), "queued": queued},
            )
        return queued

    def new_test_delivery(self, conn: Connection, tenant_id: str, endpoint_id: str, now: datetime) -> str:
        self._row(conn, tenant_id, endpoint_id)
        delivery_id = new_id("whd")
        conn.execute(
            sa.insert(webhook_deliveries).values(
                id=delivery_id,
                tenant_id=tenant_id,
                endpoint_id=endpoint_id,
                event_id=new_id("wht"),
                event_type=TEST_EVENT_TYPE,
                webhook_id=new_id("msg"),
                status=DeliveryStatus.PENDING,
                attempts=0,
                # Not due: the caller sends it now and holds the lease.
                next_attempt_at=now + timedelta(days=3650),
                created_at=now,
                updated_at=now,
            )
        )
        return delivery_id

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _facts(row: dict[str, Any]) -> dict[str, Any]:
        # Audit details name the URL without its query (it may hold a receiver's token).
        facts: dict[str, Any] = {
            k: row[k] for k in ("event_types", "streams", "payload", "status") if k in row
        }
        if "url" in row:
            facts["url"] = redact_url(row["url"])
        return facts

    @staticmethod
    def _audit(
        conn: Connection,
        action: AuditAction,
        actor: str,
        tenant_id: str,
        target: str,
        details: dict[str, Any],
    ) -> None:
        audit.append(
            conn,
            action=action,
            actor=actor,
            tenant_id=tenant_id,
            target=target,
            details=details,
        )


def _reset(now: datetime) -> dict[str, Any]:
    return {
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_owner": None,
        "lease_until": None,
        "last_error": None,
        "updated_at": now,
    }
