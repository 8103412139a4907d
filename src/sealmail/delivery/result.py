"""What SecureLine hands back per recipient, and the touches every copy that leaves gets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sealmail.domain.message import TRACE_HEADER
from sealmail.domain.outcomes import Attempt
from sealmail.domain.secureline import Decision, KeyFact
from sealmail.messages.queue import Claimed


@dataclass(frozen=True, slots=True)
class Result:
    claimed: Claimed
    attempt: Attempt
    method: str | None
    reason: str
    # Merged into the recipient's event data (e.g. how a portal notice travelled).
    extra: dict[str, Any] | None = None
    # Attempts made before ``attempt`` in this pass (a TLS refusal the portal then covered):
    # recorded too, so TLS reports (RFC 8460) count the failure the fallback hid.
    prior: tuple[Attempt, ...] = ()
    # The recipient key an OpenPGP or S/MIME copy was encrypted to (the delivery trail).
    key: KeyFact | None = None


def with_trace(msg_id: str, raw: bytes) -> bytes:
    # A trace header, as ESPs add (Postmark's X-PM-Message-Id): it ties what a recipient
    # or a bounce quotes back to our record without any PHI.
    return f"{TRACE_HEADER}: {msg_id}\r\n".encode() + raw


def name_unusable_keys(result: Result, decision: Decision) -> Result:
    # A TLS reason is written from the attempt, after the decision: keep the keys the decision
    # could not use on the record ("…; OpenPGP key 0x… expired on 2026-01-02"), as issue 12 asks.
    if result.method != "tls" or not decision.unusable_keys or decision.unusable_keys[-1] in result.reason:
        return result
    return replace(result, reason="; ".join([result.reason, *decision.unusable_keys]))
