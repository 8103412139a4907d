"""``POST /v1/messages/batch``: up to 500 independent messages, one result per item.

Each item is validated, rendered and accepted on its own; an error becomes that item's
problem document and never stops the others.  Items are prepared in order in the calling
thread (so a stored template is loaded and compiled once per batch), then accepted from
a small thread pool so ``Messages.submit``'s group commit can write many in one
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from sealmail.errors import SealmailError, ValidationFailed
from sealmail.messages.outgoing import MessageFields
from sealmail.messages.service import Accepted, Idempotency, Messages, Submission
from sealmail.templates import personalize as p
from sealmail.templates.render import Compiled, Source
from sealmail.templates.store import TemplateStore
from sealmail.tenancy.service import Principal

ACCEPT_THREADS = 16

TemplateLoader = Callable[[str, int | None], Compiled]


def template_loader(store: TemplateStore, tenant_id: str) -> TemplateLoader:
    """Load-and-compile with a per-request cache; a missing template is cached as its error."""
    cache: dict[tuple[str, int | None], Compiled | SealmailError] = {}

    def load(name: str, version: int | None) -> Compiled:
        key = (name, version)
        if key not in cache:
            try:
                source, _ = store.source(tenant_id, name, version)
                cache[key] = Compiled(source)
            except SealmailError as exc:
                cache[key] = exc
        found = cache[key]
        if isinstance(found, SealmailError):
            raise found
        return found

    return load


class BatchItemFields(MessageFields, Protocol):
    """One item: a message, optionally from a stored template or rendered with data."""

    @property
    def template(self) -> str | None: ...
    @property
    def template_version(self) -> int | None: ...
    @property
    def template_data(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class BatchItem:
    """An item as the API validated it — its fields, or the error that refused them — and,
    under an Idempotency-Key, the hash of the item's own body."""

    fields: BatchItemFields | None
    error: SealmailError | None = None
    request_hash: str | None = None


def prepare(item: BatchItem, load: TemplateLoader, domain: str, max_recipients: int) -> Submission:
    """One batch item to a ``Submission``, or the item's ``SealmailError``."""
    if item.fields is None:
        assert item.error is not None  # an item is valid or carries why not
        raise item.error
    body = item.fields
    compiled: Compiled | None = None
    if body.template is not None:
        if body.subject or body.html is not None or body.text is not None:
            raise ValidationFailed(
                [{"field": "template", "message": "give either template or subject/html/text, not both"}]
            )
        compiled = load(body.template, body.template_version)
    elif body.template_data is not None:
        compiled = Compiled(Source(body.subject, body.html, body.text))
    message: MessageFields = body
    if compiled is not None:
        message = p.personalize(body, p.render_or_fail(compiled, body.template_data or {}))
    return p.submission(message, domain, max_recipients)


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One batch item's outcome: the accepted message, or the error that refused it."""

    index: int
    accepted: Accepted | None = None
    replayed: bool = False
    error: SealmailError | None = None


def run_batch(
    messages: Messages,
    store: TemplateStore,
    who: Principal,
    items: Sequence[BatchItem],
    *,
    domain: str,
    max_recipients: int,
    idempotency_key: str | None = None,
) -> list[ItemResult]:
    """Results in item order: each item accepted, or the error that refused it.

    With an Idempotency-Key, item *i* is accepted under ``<key>#<i>`` with that item's own
    hash: a retried batch replays the items that were stored and stores the rest.
    """
    load = template_loader(store, who.tenant_id)
    results: list[ItemResult | None] = [None] * len(items)
    pending: list[tuple[int, Future[tuple[Accepted, bool]]]] = []
    with ThreadPoolExecutor(max_workers=min(ACCEPT_THREADS, len(items)) or 1) as pool:
        for i, item in enumerate(items):
            try:
                sub = prepare(item, load, domain, max_recipients)
            except SealmailError as exc:
                results[i] = ItemResult(i, error=exc)
                continue
            idem = None
            if idempotency_key is not None:
                assert item.request_hash is not None  # hashed by the API under a key
                idem = Idempotency(f"{idempotency_key}#{i}", item.request_hash)
            pending.append((i, pool.submit(messages.submit, who, sub, idem)))
        for i, future in pending:
            try:
                accepted, replayed = future.result()
            except SealmailError as exc:
                results[i] = ItemResult(i, error=exc)
                continue
            results[i] = ItemResult(i, accepted=accepted, replayed=replayed)
    return [r for r in results if r is not None]
