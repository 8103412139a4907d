"""Engagement state changes: opens, clicks, unsubscribes and re-subscribes.

Each public method takes a token from a URL, checks it (``tokens.read``) and writes the
state change and its event in one transaction (the events table is the webhook outbox).

Event data (never the address, the URL or the user agent string):

* ``message.opened``: ``machine_open``, ``user_agent_class``, ``signals``;
* ``message.clicked``: ``link`` (the link's index in the message), ``host`` (the target's
  host name, enough to tell "portal" from "survey"), ``bot_suspected``,
  ``user_agent_class``, ``signals``.  The full URL stays sealed: its query string may name
  a patient or an appointment;
* ``recipient.unsubscribed`` / ``recipient.resubscribed``: ``stream`` and ``source``
  (``one_click`` or ``preference_page``).

Volume is bounded: one ``message.opened`` per recipient per ``EVENT_INTERVAL`` (image
proxies and reloads fetch the pixel again and again) and one ``message.clicked`` per
recipient and link per interval — each once for machines and once for people, so a
proxy's prefetch or a scanner's click on arrival never hides the person's own.
Unsubscribing twice writes nothing the second time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from sealmail.domain.statuses import RecipientStatus
from sealmail.engagement import classify, tokens
from sealmail.engagement.tables import tracked_links
from sealmail.engagement.tokens import Kind, Token
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.store.tables import events, messages, recipients
from sealmail.suppressions import service as sup
from sealmail.suppressions.tables import suppressions as sup_table
from sealmail.tenancy.keyring import Keyring

EVENT_INTERVAL = timedelta(hours=1)
ACTOR = "recipient"  # audit actor of changes the recipient makes through a link
SOURCES = ("one_click", "preference_page")
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Target:
    """The recipient a token names, with what the handlers need to know about it."""

    recipient_id: str
    tenant_id: str
    message_id: str
    address: str
    stream: str
    delivered_at: datetime | None


class SubscriptionState(enum.StrEnum):
    """Where a recipient stands for a stream, read from the suppression list (never stored)."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"  # by the recipient: theirs to undo on the preferences page
    SUPPRESSED = "suppressed"  # bounce, complaint, or an administrator: not theirs to undo


@dataclass(frozen=True, slots=True)
class Subscription:
    target: Target
    state: SubscriptionState


# What else an unsubscribe writes, in its transaction: (conn, tenant, address, message id,
# source, actor).  The marketing consent ledger's revoke, wired by the composition root.
UnsubscribeHook = Callable[[Connection, str, str, str, str, str], None]


def _flag(data: Any, name: str) -> bool:
    """A stored event's machine flag (absent or malformed reads as a person's)."""
    return isinstance(data, dict) and data.get(name) is True


def _links_aad(message_id: str) -> str:
    return f"{message_id}/tracked-links"


class Engagement:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        key: bytes | Callable[[], bytes],
        base_url: str,
        clock: Clock | None = None,
        on_unsubscribe: UnsubscribeHook | None = None,
    ) -> None:
        self.engine = engine
        self.on_unsubscribe = on_unsubscribe
        self.keyring = keyring
        self._key = key
        self.base_url = base_url.rstrip("/")
        self.now = clock or (lambda: datetime.now(UTC))

    @property
    def key(self) -> bytes:
        # Read on first use, not when an app is built: building must not touch the database.
        if callable(self._key):
            self._key = self._key()
        return self._key

    # -- links ---------------------------------------------------------------------------------
    def token(self, kind: Kind, recipient_id: str, link: int = 0) -> str:
        return tokens.make(self.key, Token(kind, recipient_id, link))

    def open_url(self, recipient_id: str) -> str:
        return f"{self.base_url}/t/o/{self.token(Kind.OPEN, recipient_id)}"

    def click_url(self, recipient_id: str, link: int) -> str:
        return f"{self.base_url}/t/c/{self.token(Kind.CLICK, recipient_id, link)}"

    def unsubscribe_url(self, recipient_id: str) -> str:
        return f"{self.base_url}/u/{self.token(Kind.UNSUBSCRIBE, recipient_id)}"

    def csrf(self, token: str) -> str:
        """The preference form's CSRF token: bound to the page's own link token."""
        return hmac.new(self.key, b"sealmail/preferences-csrf/" + token.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str, submitted: object) -> bool:
        return isinstance(submitted, str) and hmac.compare_digest(
            self.csrf(token).encode(), submitted.encode("utf-8", "replace")
        )

    def ours(self, url: str) -> bool:
        """A link to our own public pages (portal, unsubscribe, tracking): never tracked."""
        for prefix in ("/p/", "/u/", "/t/"):
            if url.startswith(self.base_url + prefix):
                return True
        return False

    def store_links(self, tenant_id: str, message_id: str, urls: Sequence[str]) -> None:
        """Seal and keep a message's tracked URLs; the first writer wins (retries, workers)."""
        if not urls:
            return
        key_id, wrapped, blob = self.keyring.seal(
            tenant_id, _links_aad(message_id), json.dumps(list(urls)).encode()
        )
        with db.write(self.engine) as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(
                insert(tracked_links)
                .values(
                    message_id=message_id,
                    tenant_id=tenant_id,
                    link_count=len(urls),
                    tenant_key_id=key_id,
                    wrapped_key=wrapped,
                    urls=blob,
                    created_at=self.now(),
                )
                .on_conflict_do_nothing(index_elements=["message_id"])
            )

    def _url(self, conn: Connection, target: Target, link: int) -> str | None:
        row = conn.execute(
            sa.select(tracked_links).where(
                tracked_links.c.message_id == target.message_id,
                tracked_links.c.tenant_id == target.tenant_id,
            )
        ).first()
        if row is None or not 0 <= link < row.link_count:
            return None
        urls = json.loads(
            self.keyring.open(
                target.tenant_id, _links_aad(target.message_id), row.tenant_key_id, row.wrapped_key, row.urls
            )
        )
        url = str(urls[link])
        # Only what instrumentation stored can come back, and it stored absolute http(s)
        # URLs; checked again so this can never become an open redirect.
        return url if urlsplit(url).scheme.lower() in ("http", "https") else None

    # -- lookups -------------------------------------------------------------------------------
    def _target(self, conn: Connection, recipient_id: str, *, lock: bool = False) -> Target | None:
        q = (
            sa.select(
                recipients.c.id,
                recipients.c.tenant_id,
                recipients.c.message_id,
                recipients.c.address,
                recipients.c.status,
                recipients.c.updated_at,
                messages.c.stream,
            )
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(recipients.c.id == recipient_id)
        )
        if lock and conn.dialect.name == "postgresql":
            # Serialises concurrent fetches for one recipient, so the event bound holds.
            q = q.with_for_update(of=recipients)
        r = conn.execute(q).first()
        if r is None:
            return None
        delivered = r.updated_at if r.status == RecipientStatus.DELIVERED else None
        return Target(r.id, r.tenant_id, r.message_id, r.address, r.stream, delivered)

    def _recent(self, conn: Connection, target: Target, type_: ev.EventType, now: datetime) -> list[Any]:
        return list(
            conn.execute(
                sa.select(events.c.data).where(
                    events.c.message_id == target.message_id,
                    events.c.recipient_id == target.recipient_id,
                    events.c.type == str(type_),
                    events.c.created_at > now - EVENT_INTERVAL,
                )
            ).scalars()
        )

    def _emit(self, conn: Connection, target: Target, type_: ev.EventType, data: dict[str, Any]) -> None:
        ev.emit(
            conn,
            tenant_id=target.tenant_id,
            message_id=target.message_id,
            type_=type_,
            recipient_id=target.recipient_id,
            recipient=target.address,
            data=data,
            at=self.now(),
        )

    # -- opens and clicks ----------------------------------------------------------------------
    def opened(self, token: str, *, user_agent: str | None, method: str) -> bool:
        """Record a pixel fetch; True when an event was written."""
        t = tokens.read(self.key, token, Kind.OPEN)
        if t is None:
            return False
        now = self.now()
        with db.write(self.engine) as conn:
            target = self._target(conn, t.recipient_id, lock=True)
            if target is None:
                return False
            v = classify.classify(
                user_agent=user_agent, method=method, at=now, delivered_at=target.delivered_at
            )
            # Bounded per kind of opener: a proxy's prefetch (Apple MPP fetches on arrival)
            # must not swallow the person's own open that follows within the interval.
            recent = self._recent(conn, target, ev.EventType.OPENED, now)
            if any(_flag(d, "machine_open") == v.machine for d in recent):
                return False
            data = {
                "machine_open": v.machine,
                "user_agent_class": v.user_agent_class,
                "signals": list(v.signals),
            }
            self._emit(conn, target, ev.EventType.OPENED, data)
        return True

    def clicked(self, token: str, *, user_agent: str | None, method: str) -> str | None:
        """The URL to redirect to, or ``None`` for a token that is not ours (404)."""
        t = tokens.read(self.key, token, Kind.CLICK)
        if t is None:
            return None
        now = self.now()
        with db.write(self.engine) as conn:
            target = self._target(conn, t.recipient_id, lock=True)
            if target is None:
                return None
            url = self._url(conn, target, t.link)
            if url is None:
                return None
            recent = self._recent(conn, target, ev.EventType.CLICKED, now)
            v = classify.classify(
                user_agent=user_agent, method=method, at=now, delivered_at=target.delivered_at
            )
            # Per link and kind of clicker: a gateway that follows every link on arrival
            # must not swallow the person's click on the same link within the interval.
            if not any(
                isinstance(d, dict) and d.get("link") == t.link and _flag(d, "bot_suspected") == v.machine
                for d in recent
            ):
                data = {
                    "link": t.link,
                    "host": (urlsplit(url).hostname or "")[:253],
                    "bot_suspected": v.machine,
                    "user_agent_class": v.user_agent_class,
                    "signals": list(v.signals),
                }
                self._emit(conn, target, ev.EventType.CLICKED, data)
        return url

    # -- subscriptions -------------------------------------------------------------------------
    def _state(self, conn: Connection, target: Target) -> SubscriptionState:
        found = sup.suppressed(conn, target.tenant_id, target.stream, [target.address], self.now())
        reason = found.get(sup.normalize(target.address))
        if reason is None:
            return SubscriptionState.SUBSCRIBED
        if reason is sup.SuppressionReason.UNSUBSCRIBE:
            # An unsubscribe from every stream ("*", by an administrator) is not the
            # recipient's to undo here.
            own = conn.execute(
                sa.select(sup_table.c.id).where(
                    sup_table.c.tenant_id == target.tenant_id,
                    sup_table.c.stream == target.stream,
                    sup_table.c.address == sup.normalize(target.address),
                    sup_table.c.reason == str(sup.SuppressionReason.UNSUBSCRIBE),
                )
            ).first()
            return SubscriptionState.UNSUBSCRIBED if own is not None else SubscriptionState.SUPPRESSED
        return SubscriptionState.SUPPRESSED

    def subscription(self, token: str) -> Subscription | None:
        t = tokens.read(self.key, token, Kind.UNSUBSCRIBE)
        if t is None:
            return None
        with db.reader(self.engine) as conn:
            target = self._target(conn, t.recipient_id)
            if target is None:
                return None
            return Subscription(target, self._state(conn, target))

    def unsubscribe(self, token: str, source: str) -> Subscription | None:
        """Suppress the address on the message's stream; idempotent (one event, ever)."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        t = tokens.read(self.key, token, Kind.UNSUBSCRIBE)
        if t is None:
            return None
        with db.write(self.engine) as conn:
            target = self._target(conn, t.recipient_id, lock=True)
            if target is None:
                return None
            written = sup.suppress(
                conn,
                tenant_id=target.tenant_id,
                stream=target.stream,
                address=target.address,
                reason=sup.SuppressionReason.UNSUBSCRIBE,
                source=source,
                actor=ACTOR,
                message_id=target.message_id,
                now=self.now(),
            )
            if written:
                self._emit(
                    conn, target, ev.EventType.UNSUBSCRIBED, {"stream": target.stream, "source": source}
                )
                if self.on_unsubscribe is not None:
                    # In this transaction: the ledger and the list say the same thing or nothing.
                    self.on_unsubscribe(
                        conn, target.tenant_id, target.address, target.message_id, source, ACTOR
                    )
            return Subscription(target, self._state(conn, target))

    def resubscribe(self, token: str) -> Subscription | None:
        """Undo the recipient's own unsubscribe on this stream, and nothing else: a bounce,
        a complaint or an administrator's entry stays."""
        t = tokens.read(self.key, token, Kind.UNSUBSCRIBE)
        if t is None:
            return None
        with db.write(self.engine) as conn:
            target = self._target(conn, t.recipient_id, lock=True)
            if target is None:
                return None
            if self._state(conn, target) is SubscriptionState.UNSUBSCRIBED:
                sup.unsuppress(
                    conn,
                    tenant_id=target.tenant_id,
                    stream=target.stream,
                    address=target.address,
                    actor=ACTOR,
                )
                self._emit(
                    conn,
                    target,
                    ev.EventType.RESUBSCRIBED,
                    {"stream": target.stream, "source": "preference_page"},
                )
            return Subscription(target, self._state(conn, target))
