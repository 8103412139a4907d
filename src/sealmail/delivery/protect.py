"""SecureLine at delivery time: gather facts, decide per recipient, build and send.

For one (message, destination domain) group this stage

1. gathers facts: the recipients' certificates (key directory, discovery), the DLP
   verdict stored at intake, and the destination's last known TLS capability;
2. asks the pure ``domain.secureline.decide`` for each recipient's method;
3. builds what each method sends — the message as is (TLS), PGP/MIME or S/MIME per
   recipient, or a PHI-free portal notice — DKIM-signs it after encryption, and hands
   it to the transport;
4. turns a ``tls_required`` result into a known capability and decides those recipients again
   (typically → portal) in the same pass, so PHI is never sent in plaintext nor silently downgraded.

REQUIRETLS and ``TLS-Required: No`` (RFC 8689) are decided in ``policy.transit_for``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from sqlalchemy.engine import Engine

from sealmail.crypto import pgp, smime
from sealmail.delivery.group import CommsPreferences, Group, PlainRequests, target_of
from sealmail.delivery.policy import (
    policy_for,
    sign_wanted,
    signed_as_is,
    tls_reason,
    transit_for,
    without_tls_required,
)
from sealmail.delivery.result import Result, name_unusable_keys, with_trace
from sealmail.delivery.signing import TENANT_SOURCES, DkimStep
from sealmail.delivery.smtp_client import OutboundTransport
from sealmail.delivery.texter import NoticeTexter, TextedNotice, portal_only, sms_only, text_notice
from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.portal_factors import notice_strength
from sealmail.domain.portal_notice import DEFAULT_SUBJECT, build_notice
from sealmail.domain.secureline import (
    CommsPreference,
    Decision,
    Method,
    PlainConsent,
    TlsFacts,
    TlsState,
    decide,
)
from sealmail.domain.tags import SystemTag
from sealmail.domain.tls_policy import STREAM_MINIMUM, Stream, TlsPolicy
from sealmail.messages import queue
from sealmail.messages.personalize import Personalizer, add_headers
from sealmail.messages.queue import Claimed, QueuedMessage
from sealmail.portal.holds import NoticeFacts, PortalHolds
from sealmail.secureline.discovery import Discovery
from sealmail.secureline.identities import Identities
from sealmail.secureline.keydir import KeyDirectory, RecipientKeys

log = structlog.get_logger("sealmail.secureline")

# How long a destination's TLS capability is trusted before it is found out again.
CAPABILITY_SECONDS = queue.CAPABILITY_SECONDS
# How long this process reuses what it read (or wrote) about a destination before asking
# the database again.  Short against CAPABILITY_SECONDS: another worker's newer finding
# reaches this one within a minute, and the table is no longer read once per delivery.
CAPABILITY_CACHE_SECONDS = 60.0
# Upper bound on key discovery per delivery group (WKD fetches run concurrently).
DISCOVERY_SECONDS = 10.0


class SecureLine:
    def __init__(
        self,
        engine: Engine,
        keydir: KeyDirectory,
        identities: Identities,
        portal: PortalHolds,
        *,
        sign: bool = True,
        discovery: Discovery | None = None,
        personalizer: Personalizer | None = None,
        plain: PlainRequests | None = None,
        texter: NoticeTexter | None = None,
        preferences: CommsPreferences | None = None,
    ) -> None:
        self.engine = engine
        self.plain = plain
        self.preferences = preferences
        self.texter = texter
        self.personalizer = personalizer or Personalizer()
        self.keydir = keydir
        self.identities = identities
        self.portal = portal
        self.dkim = DkimStep(identities, sign)
        self.discovery = discovery
        # (domain, level) -> (monotonic expiry, (state, detail) or None when nothing recent is known)
        self._capabilities: dict[tuple[str, str], tuple[float, tuple[str, str] | None]] = {}

    async def _known(self, domain: str, level: str) -> tuple[str, str] | None:
        """The destination's last known TLS capability, through a short in-process cache."""
        hit = self._capabilities.get((domain, level))
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        known = await asyncio.to_thread(
            queue.tls_capabilities, self.engine, domain, level, CAPABILITY_SECONDS
        )
        self._capabilities[(domain, level)] = (now + CAPABILITY_CACHE_SECONDS, known)
        return known

    async def deliver(
        self,
        transport: OutboundTransport,
        msg: QueuedMessage,
        domain: str,
        rcpts: Sequence[Claimed],
        raw: bytes,
        requested: TlsPolicy,
    ) -> list[Result]:
        now = datetime.now(UTC)
        # The signer and "no recipient here has a key" are usually cached: answered on the
        # loop, as a thread hop per group cost more than either lookup.
        cached = self.dkim.signer_cached(msg)
        refusal = None if cached else await asyncio.to_thread(self.dkim.unsignable, msg)
        if refusal is not None:
            a = AttemptStatus.DEFERRED
            return [Result(c, Attempt(c.address, a, "dkim_no_key", refusal), None, refusal) for c in rcpts]
        group, tls = await self._gather(transport, msg, domain, rcpts, raw, requested, now)
        policy, dlp, transit = group.policy, group.dlp, group.transit
        decisions = {}
        for c in rcpts:
            recipient_facts, recipient_keys = group.facts(c, tls)
            decisions[c.id] = (decide(policy, dlp, recipient_facts), recipient_keys)
        tls_rcpts = [c for c in rcpts if decisions[c.id][0].method is Method.TLS]
        others = [c for c in rcpts if decisions[c.id][0].method is not Method.TLS]
        jobs = [self._one(group, c, *decisions[c.id]) for c in others]
        # A signed return path or instrumented links make every copy different: one
        # transaction per recipient then, otherwise the domain's recipients share one.
        if self.personalizer.per_recipient(msg):
            jobs.extend(self._tls(group, [c]) for c in tls_rcpts)
        elif tls_rcpts:
            jobs.append(self._tls(group, tls_rcpts))
        # The usual group (one job) is awaited here: a task would cost a loop turn per delivery.
        batches = [await jobs[0]] if len(jobs) == 1 else await asyncio.gather(*jobs)
        results: list[Result] = [r for batch in batches for r in batch]
        noted = [name_unusable_keys(r, decisions[r.claimed.id][0]) for r in results]
        # RFC 8689: whether REQUIRETLS held and a TLS-Required: No was honoured is on the record.
        return [replace(r, reason=f"{r.reason}; {transit.note}") for r in noted] if transit.note else noted

    async def _gather(
        self,
        transport: OutboundTransport,
        msg: QueuedMessage,
        domain: str,
        rcpts: Sequence[Claimed],
        raw: bytes,
        requested: TlsPolicy,
        now: datetime,
    ) -> tuple[Group, TlsFacts]:
        """Step 1: the facts every recipient of the group is decided on."""
        policy, dlp = policy_for(msg)
        preferences = await self._preferences(msg, [c.address for c in rcpts])
        # A redirected patient's mail goes to the alternative address: its keys are facts too.
        addresses = [c.address for c in rcpts] + [
            p.redirect_to for p in preferences.values() if p.redirect_to
        ]
        keys = self.keydir.cached_facts(msg.tenant_id, addresses)  # no I/O: nobody keyed, or
        keys = keys or self.keydir.kept_facts(msg.tenant_id, addresses, now)  # rows kept since the claim
        if keys is None:
            keys = await self.keydir.read_facts(msg.tenant_id, addresses, now)
        if await self._discover(msg, rcpts, keys):
            # Discovery stored new keys: read the facts again (otherwise one read serves both).
            keys = await asyncio.to_thread(self.keydir.facts, msg.tenant_id, addresses, now)
        transit = transit_for(msg, requested, dlp)
        if msg.tls_required is not None and not transit.relaxed:
            raw = without_tls_required(raw)
        # REQUIRETLS and an honoured TLS-Required: No change what the transport enforces, so
        # what was learned at the plain level says nothing: try, and let the transport decide.
        known = None if transit.requiretls or transit.relaxed else await self._known(domain, str(requested))
        consents = await self._consents(msg, addresses)
        group = Group(
            transport,
            msg,
            domain,
            raw,
            requested,
            policy,
            dlp,
            keys,
            now,
            TlsState(known[0]) if known else None,
            consents,
            transit,
            preferences,
        )
        tls = TlsFacts(TlsState(known[0]), known[1]) if known else TlsFacts()
        return group, tls

    # -- TLS: the message as is, all recipients of the domain in one transaction ----------------
    async def _tls(self, group: Group, rcpts: list[Claimed]) -> list[Result]:
        msg, domain, requested = group.msg, group.domain, group.requested
        mail_from, body = msg.mail_from, group.raw
        if len(rcpts) == 1 and self.personalizer.per_recipient(msg):
            content = await self.personalizer.content(msg, rcpts[0], group.raw, "tls")
            mail_from = self.personalizer.mail_from(msg, rcpts[0])
            body = add_headers(content.raw, content.outer_headers)
        if sign_wanted(msg, "sign_smime"):
            identity = await asyncio.to_thread(self.identities.smime_identity, msg.tenant_id)
            body = signed_as_is(body, identity, msg.header_from or msg.mail_from)
        payload = self.dkim.sign(msg, with_trace(msg.id, body))
        transit = group.transit
        attempts = await group.transport.deliver(
            domain,
            mail_from,
            [c.address for c in rcpts],
            payload,
            requested,
            requiretls=transit.requiretls,
            relaxed=transit.relaxed,
        )
        by_address = {a.recipient: a for a in attempts}
        results: list[Result] = []
        refused: list[tuple[Claimed, Attempt]] = []
        for c in rcpts:
            a = by_address[c.address]
            if a.reason == "tls_required" and not transit.requiretls:
                refused.append((c, a))
            else:
                # A REQUIRETLS message is returned rather than rerouted (RFC 8689 §4.2.1).
                reason = tls_reason(a) if a.status is AttemptStatus.DELIVERED else "tls: delivery attempt"
                results.append(Result(c, a, "tls", reason))
        delivered = [a for a in attempts if a.status is AttemptStatus.DELIVERED and a.tls.version]
        if delivered and group.known_state is not TlsState.MEETS and not transit.relaxed:
            await self._learn(domain, requested, TlsState.MEETS, tls_reason(delivered[0])[5:])
        if refused:
            results.extend(await self._decide_again(group, refused))
        return results

    async def _decide_again(self, group: Group, refused: list[tuple[Claimed, Attempt]]) -> list[Result]:
        """The destination cannot meet the level: remember that, and decide those recipients again."""
        detail = refused[0][1].detail or "destination cannot meet the TLS policy"
        await self._learn(group.domain, group.requested, TlsState.FAILS, detail)
        failing = TlsFacts(TlsState.FAILS, detail)
        results: list[Result] = []
        again = []
        for c, a in refused:
            recipient_facts, keys = group.facts(c, failing)
            decision = decide(group.policy, group.dlp, recipient_facts)
            if decision.method is Method.TLS or decision.method is None:
                results.append(Result(c, a, None, decision.reason))
            else:
                again.append(self._one(group, c, decision, keys))
        refused_by_id = {c.id: a for c, a in refused}
        for batch in await asyncio.gather(*again):
            results.extend(replace(r, prior=(refused_by_id[r.claimed.id], *r.prior)) for r in batch)
        return results

    @staticmethod
    def _patients_mail(msg: QueuedMessage) -> bool:
        """Whether the patients' registers apply: only to the tenant's own mail.  Sealmail's
        mail (portal codes, file-share notices, alerts) keeps its own rules, and a file
        share lives only in the portal anyway."""
        return msg.source in TENANT_SOURCES and SystemTag.FILE_SHARE not in msg.tags

    async def _consents(self, msg: QueuedMessage, addresses: list[str]) -> dict[str, PlainConsent]:
        """Confirmed plain-mail requests (164.524) of the message's tenant for these addresses;
        none for mail the portal alone may carry (``texter.portal_only``)."""
        if self.plain is None or not self._patients_mail(msg) or portal_only(msg):
            return {}
        # "Nobody here asked" from the register's cached set needs no thread hop.
        if self.plain.cached_none_of(msg.tenant_id, addresses):
            return {}
        return await asyncio.to_thread(self.plain.confirmed, msg.tenant_id, addresses)

    async def _preferences(self, msg: QueuedMessage, addresses: list[str]) -> dict[str, CommsPreference]:
        """Standing confidential-communication preferences (164.522(b)) for these recipients."""
        if self.preferences is None or not self._patients_mail(msg):
            return {}
        if self.preferences.cached_none_of(msg.tenant_id, addresses):
            return {}
        return await asyncio.to_thread(self.preferences.standing, msg.tenant_id, addresses)

    async def _discover(
        self, msg: QueuedMessage, rcpts: Sequence[Claimed], known: dict[str, RecipientKeys]
    ) -> int:
        """Key discovery (WKD) for the tenant, bounded in time; a failure only means no new key.

        ``known`` — the key directory's facts already read for ``rcpts``; returns how many
        keys were found (and stored).
        """
        opted = msg.tenant_settings.get("key_discovery", True)
        addresses = [c.address for c in rcpts]
        discovery = self.discovery  # settled: nothing to look up, so no task and timer either
        if discovery is None or opted is False or discovery.settled(msg.tenant_id, addresses, known):
            return 0
        try:
            return await asyncio.wait_for(
                discovery.discover(msg.tenant_id, addresses, known), DISCOVERY_SECONDS
            )
        except Exception as exc:  # noqa: BLE001 — discovery must never hold up delivery
            log.warning("secureline.discovery_failed", error=type(exc).__name__)
            # A timeout may land after a key was stored: read the facts again to be safe.
            return 1

    async def _learn(self, domain: str, level: TlsPolicy, state: TlsState, detail: str) -> None:
        """Remember a destination's capability; bookkeeping never fails a delivery.

        Written only when it changes what this process knows: concurrent deliveries to one
        destination all learn the same fact, and one write transaction per delivery group
        was a large share of the worker's database time.
        """
        key = (domain, str(level))
        hit = self._capabilities.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now and hit[1] is not None and hit[1][0] == state:
            return
        # Claimed before the write, so groups finishing meanwhile do not write it again.
        self._capabilities[key] = (now + CAPABILITY_CACHE_SECONDS, (state, detail[:300]))
        try:
            await asyncio.to_thread(
                queue.record_tls_capability, self.engine, domain, str(level), state, detail
            )
        except Exception as exc:  # noqa: BLE001 — the mail already went (or not); only the cache is lost
            self._capabilities.pop(key, None)
            log.warning("secureline.capability_not_saved", domain=domain, error=type(exc).__name__)

    # -- per recipient: PGP, S/MIME, portal, or nothing possible ------------------------------
    async def _one(self, group: Group, c: Claimed, decision: Decision, keys: RecipientKeys) -> list[Result]:
        msg, method = group.msg, decision.method
        if method is None:
            a = Attempt(
                c.address, AttemptStatus.DEFERRED, decision.code or "no_method", decision.reason[:300]
            )
            return [Result(c, a, None, decision.reason)]
        content = await self.personalizer.content(msg, c, group.raw, str(method))
        try:
            if method is Method.PGP:
                body = await self._pgp(msg, content.raw, decision, keys)
            elif method is Method.SMIME:
                body = await self._smime(msg, content.raw, decision, keys, group.now)
            elif method is Method.PORTAL:
                body, texted = await self._notice(msg, c, decision, group.now, group.requested)
                if c.notice == "sms":
                    if texted.queued:
                        return [sms_only(c, decision)]
                    # Fallback: the notice still has to reach the patient, so it goes by email
                    # (to the alternative address of a redirect), and the trail says why the
                    # text could not: consent withdrawn since intake, or "no text messages".
                    reason = f"{decision.reason}; SMS notice not possible ({texted.reason}), sent by email"
                    decision = replace(decision, reason=reason)
            elif method is Method.PLAIN:
                body = content.raw  # as the patient asked, after the warning (evidence/plain.py)
            else:  # pragma: no cover — TLS recipients are handled as a group
                raise AssertionError(method)
        except (pgp.CertificateError, smime.CertificateError, ValueError) as exc:
            a = Attempt(c.address, AttemptStatus.DEFERRED, "encryption_failed", str(exc)[:300])
            return [Result(c, a, str(method), f"{method}: could not encrypt ({exc})")]
        # Message-level encryption (and the PHI-free notice) protect the content, so the
        # transport need not refuse a destination without TLS — except where the stream
        # sets a floor of its own.
        level = TlsPolicy.OPPORTUNISTIC
        if method not in (Method.PORTAL, Method.PLAIN):
            # The patient's confirmed request waives the stream's floor: STARTTLS is still
            # used whenever the destination offers it.
            level = level.at_least(STREAM_MINIMUM[Stream(msg.stream)])
        payload = self.dkim.sign(msg, with_trace(msg.id, add_headers(body, content.outer_headers)))
        mail_from = self.personalizer.mail_from(msg, c)
        if method is Method.PORTAL:
            return [
                await self._deliver_notice(group.transport, c, decision, mail_from, payload, group.requested)
            ]
        requiretls = group.transit.requiretls
        to, domain = target_of(c, decision)
        [a] = await group.transport.deliver(domain, mail_from, [to], payload, level, requiretls=requiretls)
        reason = decision.reason
        if method is Method.PLAIN and a.status is AttemptStatus.DELIVERED:
            reason += f"; carried over {a.tls.version}" if a.tls.version else "; carried without TLS"
        return [Result(c, a, str(method), reason, key=decision.key)]

    async def _pgp(self, msg: QueuedMessage, raw: bytes, decision: Decision, keys: RecipientKeys) -> bytes:
        assert decision.key is not None
        cert = keys.pgp_certs[decision.key.fingerprint]
        # The signer's user id is the From address, or readers flag a mismatch.
        sender = (msg.header_from or msg.mail_from) if sign_wanted(msg, "sign_pgp") else None
        ids, tenant = self.identities, msg.tenant_id
        loaded = ids.cached_pgp_keys(tenant, sender)  # once loaded, no thread hop per message
        archive, signer = loaded if loaded else await asyncio.to_thread(ids.pgp_keys, tenant, sender)
        return pgp.encrypt_pgp_mime(raw, [cert], archive_cert=archive, signer_secret=signer)

    async def _smime(
        self, msg: QueuedMessage, raw: bytes, decision: Decision, keys: RecipientKeys, now: datetime
    ) -> bytes:
        assert decision.key is not None
        identity = await asyncio.to_thread(self.identities.smime_identity, msg.tenant_id)
        recipient_cert = keys.smime_certs[decision.key.fingerprint]
        # GCM / OAEP only where the recipient's signed mail advertised them (RFC 8551 §2.7.1.1).
        caps = keys.smime_capabilities.get(decision.key.fingerprint)
        # Like the OpenPGP archive copy: the tenant can open what it sent, with its own identity.
        archive_cert = smime.archive_certificate(identity, now=now)
        if identity is not None and sign_wanted(msg, "sign_smime"):
            return smime.sign_and_encrypt_smime(
                raw,
                identity,
                [recipient_cert],
                archive_cert=archive_cert,
                protect_subject=True,
                capabilities=caps,
            )
        return smime.encrypt_smime(
            raw, [recipient_cert], archive_cert=archive_cert, protect_subject=True, capabilities=caps
        )

    async def _deliver_notice(
        self,
        transport: OutboundTransport,
        c: Claimed,
        decision: Decision,
        mail_from: str,
        payload: bytes,
        requested: TlsPolicy,
    ) -> Result:
        """Send a portal notice and record the TLS facts that carried it.

        The notice is PHI-free, so it may go below the required level; but first it is
        tried *at* the level unless the destination is already known to fail it, so
        that a destination which can meet the level is recorded as such (an
        opportunistic session never verifies a certificate).  The hold remembers the
        outcome: the portal then refuses sign-in factors that travelled below the level
        (``domain.portal_factors``).
        """
        a: Attempt | None = None
        prior: tuple[Attempt, ...] = ()
        to, domain = target_of(c, decision)
        if requested is not TlsPolicy.OPPORTUNISTIC:
            known = await self._known(domain, str(requested))
            if known is None or known[0] != TlsState.FAILS:
                [a] = await transport.deliver(domain, mail_from, [to], payload, requested)
                if a.reason == "tls_required":
                    await self._learn(
                        domain, requested, TlsState.FAILS, a.detail or "cannot meet the TLS policy"
                    )
                    prior = (a,)
                    a = None
        if a is None:
            [a] = await transport.deliver(domain, mail_from, [to], payload, TlsPolicy.OPPORTUNISTIC)
        if a.status is not AttemptStatus.DELIVERED:
            return Result(c, a, str(Method.PORTAL), decision.reason, prior=prior)
        facts = NoticeFacts(
            required_tls=str(requested),
            tls_version=a.tls.version,
            verified_by=str(a.tls.verified_by),
            strength=notice_strength(requested, a.tls),
        )
        try:
            await asyncio.to_thread(self.portal.mark_notified, c.id, datetime.now(UTC), facts)
        except Exception as exc:  # noqa: BLE001 — unrecorded facts read as "below the level": fail closed
            log.warning("portal.notified_not_saved", error=type(exc).__name__)
        extra = {"portal_notice": facts.as_event()}
        return Result(c, a, str(Method.PORTAL), decision.reason, extra=extra, prior=prior)

    async def _notice(
        self, msg: QueuedMessage, c: Claimed, decision: Decision, now: datetime, requested: TlsPolicy
    ) -> tuple[bytes, TextedNotice]:
        # A patient who redirected their mail signs in to the portal, and gets its notice and
        # codes, at the alternative address (164.522(b)).
        to, _ = target_of(c, decision)
        settings = msg.tenant_settings.get("secureline")
        subject = DEFAULT_SUBJECT
        days = None
        if isinstance(settings, dict):
            subject = str(settings.get("portal_subject") or DEFAULT_SUBJECT)
            days = int(settings["portal_expiry_days"]) if settings.get("portal_expiry_days") else None
        link, expires = await asyncio.to_thread(
            self.portal.hold,
            tenant_id=msg.tenant_id,
            message_id=msg.id,
            recipient_id=c.id,
            address=to,
            reason=decision.reason,
            now=now,
            days=days,
            required_tls=str(requested),
        )
        texted = await text_notice(self.texter, msg, c, link, decision)
        sender = msg.header_from or msg.mail_from
        notice = build_notice(
            organization=msg.tenant_name or "Your care provider",
            sender=sender,
            recipient=to,
            link=link,
            expires_at=expires,
            message_id_domain=sender.rpartition("@")[2] or "sealmail.invalid",
            subject_template=subject,
        )
        return notice.raw, texted
