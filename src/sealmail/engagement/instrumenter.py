"""The worker's ``Instrumenter`` (see ``delivery/personalize.py``): per-recipient copies
with tracked links, an open pixel and RFC 8058 unsubscribe headers.

Called by SecureLine for each recipient before encryption, so the pixel and the links
travel inside PGP or S/MIME like the rest of the content; the unsubscribe headers go on
the outermost message, where mailbox providers read them, and are covered by DKIM
(``crypto/dkim.py`` signs ``List-Unsubscribe`` and ``List-Unsubscribe-Post``; RFC 8058 §3
requires it).  A portal-notice recipient gets only the headers: the content they would
carry is not sent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sealmail.engagement import instrument, policy
from sealmail.engagement.service import Engagement
from sealmail.messages.personalize import Instrumented
from sealmail.messages.queue import Claimed, QueuedMessage

UNSUBSCRIBE_FIELDS = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
# Messages whose links are already stored by this process (an LRU, to skip the write).
_STORED_CACHE = 1024


class LinkInstrumenter:
    def __init__(self, engagement: Engagement) -> None:
        self.engagement = engagement
        self._stored: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def applies(self, msg: QueuedMessage) -> bool:
        return policy.plan(msg.tenant_settings, msg.stream).any

    def instrument(self, msg: QueuedMessage, recipient: Claimed, raw: bytes, method: str) -> Instrumented:
        plan = policy.plan(msg.tenant_settings, msg.stream)
        outer: tuple[tuple[str, str], ...] = ()
        if plan.unsubscribe:
            # RFC 8058 §3.1: an https URI in List-Unsubscribe and exactly this POST body key.
            outer = (
                ("List-Unsubscribe", f"<{self.engagement.unsubscribe_url(recipient.id)}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            )
            # The sender's own List-Unsubscribe would be a second, unsigned-by-us one
            # pointing somewhere that does not suppress in Sealmail.
            raw = instrument.drop_fields(raw, UNSUBSCRIBE_FIELDS)
        if method == "portal" or not plan.tracks:
            return Instrumented(raw, outer)
        e = self.engagement
        result = instrument.instrument(
            raw,
            track_link=(lambda i: e.click_url(recipient.id, i)) if plan.clicks else None,
            pixel_url=e.open_url(recipient.id) if plan.opens else None,
            keep=e.ours,
        )
        if result.urls:
            self._store(msg, result.urls)
        return Instrumented(result.raw, outer)

    def _store(self, msg: QueuedMessage, urls: list[str]) -> None:
        with self._lock:
            if msg.id in self._stored:
                self._stored.move_to_end(msg.id)
                return
        # Before the copy leaves: a click must find its URL.  Every recipient of a message
        # yields the same list (the same content, parsed the same way), so the first
        # stored row serves all of them.
        self.engagement.store_links(msg.tenant_id, msg.id, urls)
        with self._lock:
            self._stored[msg.id] = None
            while len(self._stored) > _STORED_CACHE:
                self._stored.popitem(last=False)
