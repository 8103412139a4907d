"""DKIM at delivery: every tenant message leaves signed by its From domain, or is held.

Signing happens last, after encryption, over the canonical bytes the transport sends
(``domain/wire.py``), so what a receiver verifies is exactly what crossed the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from sealmail.domain.wire import canonical_message, prepend_lines
from sealmail.messages.queue import QueuedMessage
from sealmail.secureline.identities import Identities

log = structlog.get_logger("sealmail.secureline")

# Sources of tenant-submitted mail, whose From domain intake checked is a verified
# sender domain of the tenant.
TENANT_SOURCES = frozenset({"api", "smtp"})


def _from_domain(msg: QueuedMessage) -> str:
    return (msg.header_from or msg.mail_from).rpartition("@")[2].lower()


class DkimStep:
    def __init__(self, identities: Identities, enabled: bool = True) -> None:
        self.identities = identities
        self.enabled = enabled
        self._batches = SignBatches()

    def signer_cached(self, msg: QueuedMessage) -> bool:
        """True when ``unsignable(msg)`` is None and known without I/O."""
        domain = _from_domain(msg)
        if not self.enabled or not domain or msg.source not in TENANT_SOURCES:
            return True
        return self.identities.cached_dkim_signer(msg.tenant_id, domain) is not None

    def unsignable(self, msg: QueuedMessage) -> str | None:
        """Why this message must not leave, when its From domain has no DKIM key.

        Unsigned mail from a domain that publishes DMARC fails it (RFC 7489 §4.2): the
        message is held (deferred, so it goes once keys exist) rather than sent unsigned.
        """
        domain = _from_domain(msg)
        if not self.enabled or not domain or msg.source not in TENANT_SOURCES:
            # Mail Sealmail writes itself (DSNs, alerts, portal mail) may come from the
            # reporting host's name, which is no tenant's sender domain: signed when a
            # key exists, never held for want of one.
            return None
        if self.identities.dkim_signer(msg.tenant_id, domain):
            return None
        log.warning("dkim.no_key", tenant_id=msg.tenant_id, domain=domain)
        return (
            f"dkim: {domain} has no DKIM signing key, so the message is held; create one with "
            f"`sealmail domains verify {domain}` or POST /v1/domains/{domain}/dkim"
        )

    async def sign(self, msg: QueuedMessage, payload: bytes) -> bytes:
        # Canonical first, so the DKIM signature covers exactly the bytes sent (wire.py).
        payload = canonical_message(payload)
        if not self.enabled:
            return payload
        domain = _from_domain(msg)
        if not domain:
            return payload
        signer = self.identities.dkim_signer(msg.tenant_id, domain)
        if signer is None:
            log.warning("dkim.no_key", tenant_id=msg.tenant_id, domain=domain)
            return payload
        # On a thread: the RSA signature (0.3-0.7 ms of a core, most of a delivery's CPU)
        # runs with the GIL released, so the event loop meanwhile serves other deliveries and
        # a worker uses a second core when there is one idle.  Already canonical: the signer
        # need not scan the whole message again, and the signed message stays marked
        # canonical, so the SMTP client's check does not either.
        fields = await self._batches.run(signer.wire_fields, payload)
        return prepend_lines(fields, payload)


class SignBatches:
    """Signatures asked for in one turn of an event loop, made in one executor job.

    A hand-off to the executor per message (a thread woken, the GIL passed there and back,
    the loop woken by the result) cost ~0.25 ms of CPU, more than the Python around the
    signature; a claim starts its delivery groups together, so they ask in the same turn
    and share one hand-off.  Each caller gets its own result or exception.
    """

    def __init__(self) -> None:
        # Per loop (a process may run more than one, each in its own thread).
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job]] = {}

    async def run(self, fn: Callable[[bytes], bytes], arg: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        pending = self._pending.setdefault(loop, [])
        pending.append((fn, arg, done))
        if len(pending) == 1:  # the turn's first: the job leaves when the turn is over
            loop.call_soon(self._dispatch, loop)
        return await done

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._pending.pop(loop, [])
        try:
            made = loop.run_in_executor(None, _make_all, [(fn, arg) for fn, arg, _ in jobs])
        except Exception as exc:  # noqa: BLE001 — e.g. the executor shut down: every caller hears it
            for _, _, done in jobs:
                if not done.done():
                    done.set_exception(exc)
            return
        made.add_done_callback(lambda future: _hand_out(jobs, future))


_Job = tuple[Callable[[bytes], bytes], bytes, "asyncio.Future[bytes]"]
_Made = list[tuple[bytes | None, BaseException | None]]  # each call's value or exception


def _make_all(calls: list[tuple[Callable[[bytes], bytes], bytes]]) -> _Made:
    out: _Made = []
    for fn, arg in calls:
        try:
            out.append((fn(arg), None))
        except Exception as exc:  # noqa: BLE001 — handed to its own caller, as run_in_executor would
            out.append((None, exc))
    return out


def _hand_out(jobs: list[_Job], made: asyncio.Future[_Made]) -> None:
    failed = None if made.cancelled() else made.exception()
    for i, (_, _, done) in enumerate(jobs):
        if done.done():  # its caller was cancelled meanwhile
            continue
        if made.cancelled():
            done.cancel()
        elif failed is not None:
            done.set_exception(failed)
        else:
            value, exc = made.result()[i]
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(value)  # type: ignore[arg-type]  # None only beside an exception
