"""What SecureLine decides from, read off the queued message: the tenant's policy, the DLP
verdict stored at intake, and the tenant's signing opt-ins (validated when saved)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sealmail.crypto import smime
from sealmail.domain.outcomes import Attempt
from sealmail.domain.secureline import DEFAULT_ORDER, DlpAction, DlpFacts, Method, Policy, Protection
from sealmail.domain.tags import SystemTag
from sealmail.domain.tls_policy import Stream, TlsPolicy, TlsRequirement, relaxation_refused
from sealmail.messages.queue import QueuedMessage


def tenant_policy(settings: dict[str, object]) -> Policy:
    """The tenant's SecureLine policy from its settings (validated when they were saved)."""
    raw = settings.get("secureline")
    if not isinstance(raw, dict):
        return Policy()
    order = tuple(Method(m) for m in raw.get("order", [])) or DEFAULT_ORDER
    return Policy(
        order=order,
        forbidden=frozenset(Method(m) for m in raw.get("forbidden", [])),
        force_portal=bool(raw.get("force_portal", False)),
        require_message_encryption_on_phi=bool(raw.get("require_message_encryption_on_phi", False)),
    )


def dlp_facts(msg: QueuedMessage) -> DlpFacts:
    findings = msg.dlp_findings or []
    summary = "; ".join(f"{f['detector']} in {f['location']}" for f in findings[:5])
    return DlpFacts(bool(findings), DlpAction(msg.dlp_action or "none"), summary)


def sign_wanted(msg: QueuedMessage, option: str) -> bool:
    """Tenant opt-in: ``secureline.sign_pgp`` / ``secureline.sign_smime``."""
    settings = msg.tenant_settings.get("secureline")
    return isinstance(settings, dict) and bool(settings.get(option))


def policy_for(msg: QueuedMessage) -> tuple[Policy, DlpFacts]:
    """The policy and DLP facts the decisions of this message start from."""
    if msg.source == "portal" and SystemTag.PORTAL_CODE in msg.tags:
        # A portal sign-in code carries no PHI; routing it through a force-portal
        # policy would send a notice for the code mail itself.  Nor may a code that
        # cannot travel at its level become a notice: it opens a message, so it is
        # deferred instead (issue 11: never below the message's required level).
        return Policy(forbidden=frozenset({Method.PORTAL})), DlpFacts()
    policy, dlp = tenant_policy(msg.tenant_settings), dlp_facts(msg)
    if SystemTag.FILE_SHARE in msg.tags or SystemTag.FORM_COPY in msg.tags:
        # A shared file is only reachable through the portal, whatever else the
        # recipient could take; a form's copy to its submitter goes there too (the
        # address was typed into a public page: only its owner can sign in to read it).
        policy = replace(policy, force_portal=True)
    if msg.protection == Protection.SECURE:
        policy = replace(policy, message_level_only=True)
    return policy, dlp


@dataclass(frozen=True, slots=True)
class Transit:
    """What the sender asked of the transport for this message (RFC 8689), as decided here.

    ``note`` is added to the method reason of every recipient the message goes to as is,
    so the record says whether a ``TLS-Required: No`` was honoured and why (not).
    """

    requiretls: bool = False
    relaxed: bool = False
    note: str = ""


def transit_for(msg: QueuedMessage, requested: TlsPolicy, dlp: DlpFacts) -> Transit:
    """REQUIRETLS is always kept; ``TLS-Required: No`` only where nothing else wants TLS.

    The header can waive the destination's MTA-STS/DANE for mail whose own policy already
    allowed plaintext; never a tenant's or stream's TLS floor, and never for a message DLP
    found PHI in (``tls_policy.relaxation_refused``).  Message-level encryption, portal
    notices and DLP's encryption requirements are untouched either way.
    """
    if msg.tls_required == TlsRequirement.REQUIRETLS and not msg.mail_from:
        return Transit(requiretls=True, note="REQUIRETLS (RFC 8689 §4.3): a bounce, passed on where offered")
    if msg.tls_required == TlsRequirement.REQUIRETLS:
        return Transit(requiretls=True, note="REQUIRETLS (RFC 8689): verified TLS to a REQUIRETLS hop")
    if msg.tls_required != TlsRequirement.NOT_REQUIRED:
        return Transit()
    phi = dlp.phi_found or dlp.action is not DlpAction.NONE
    refused = relaxation_refused(requested, phi=phi, stream=Stream(msg.stream))
    if refused is not None:
        return Transit(note=f"TLS-Required: No not honoured: {refused}")
    return Transit(relaxed=True, note="TLS-Required: No honoured: the destination's MTA-STS/DANE not applied")


def tls_reason(a: Attempt) -> str:
    """The method reason of a message that went as is: what TLS carried it."""
    if a.tls.version is None:
        return f"tls: {a.mx_host} offers no STARTTLS; sent unencrypted under the opportunistic policy"
    if a.tls.verified:
        by = "" if str(a.tls.verified_by) == "pkix" else f" ({a.tls.verified_by})"
        return f"tls: verified certificate for {a.mx_host}{by}, {a.tls.version}"
    return f"tls: encrypted to {a.mx_host}, {a.tls.version}, certificate not verified (policy require)"


def without_tls_required(raw: bytes) -> bytes:
    """``raw`` without its ``TLS-Required`` header fields (folded lines included).

    A field Sealmail did not honour must not ask the hops after ours to relax either: a
    recipient's relay would otherwise ignore its own TLS policy for PHI.  Under REQUIRETLS
    the field is ignored, and RFC 8689 §4.1 leaves relaying it optional.
    """
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or b"tls-required" not in head.lower():
        return raw
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() == b"tls-required"
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept) + sep + body


def signed_as_is(raw: bytes, identity: smime.TenantIdentity | None, sender: str) -> bytes:
    """A message going as is, S/MIME-signed (RFC 8551 §3.5) by the tenant identity when the
    tenant asked (``secureline.sign_smime``), with RFC 9788 ``hp="clear"`` header protection.

    Only when the identity's certificate names the From address (otherwise every reader would
    flag the signer as someone else) and the body is 7-bit (RFC 8551 §3.1.3: an 8-bit part
    would break the signature in transit); else the message goes unsigned, as before.
    """
    if identity is None or sender.strip().lower() not in identity.info.emails:
        return raw
    try:
        return smime.sign_smime(raw, identity.certificate, identity.private_key, identity.chain)
    except ValueError:
        return raw
