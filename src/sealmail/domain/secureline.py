"""SecureLine: choose, per recipient, the strongest protection that recipient can take.

A pure function over facts gathered beforehand by adapters (key directory, WKD, the
destination's TLS capability, the DLP verdict).  Default order: OpenPGP → S/MIME →
verified TLS → the secure portal.  Policy may reorder methods, forbid some, force the
portal, or demand message-level encryption (pgp, smime or portal — not TLS alone) when
DLP finds PHI.  The decision carries a human-readable reason that is recorded on the
recipient's delivered event, e.g. ``pgp: key 0xABCD… from WKD``.

The TLS capability may be *unknown* (no recent attempt or probe).  Then TLS is chosen
optimistically: the transport enforces the required level and never sends in plaintext,
and a ``tls_required`` result becomes a known capability, after which the same recipient
is decided again (→ portal) within the same delivery pass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace


class Method(enum.StrEnum):
    PGP = "pgp"
    SMIME = "smime"
    TLS = "tls"
    PORTAL = "portal"
    # Never in a policy: chosen only for a patient's confirmed request for unencrypted mail.
    PLAIN = "plain"


class DlpAction(enum.StrEnum):
    """What the tenant's DLP rules demand for a message, from least to most severe (definition order)."""

    NONE = "none"
    REQUIRE_ENCRYPTION = "require_encryption"  # message-level encryption (PGP/S/MIME) or portal
    PORTAL_ONLY = "portal_only"  # the recipient reads it in the portal, whatever keys exist
    QUARANTINE = "quarantine"  # held for a reviewer's release or rejection
    BLOCK = "block"  # refused at intake: API error / SMTP 5xx with the verdict's reason

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    # Comparisons between actions follow severity, so max(actions) is the strictest one.
    # (A StrEnum would otherwise compare alphabetically: "block" < "none".)
    def __lt__(self, other: str) -> bool:
        if isinstance(other, DlpAction):
            return self.severity < other.severity
        return NotImplemented

    def __le__(self, other: str) -> bool:
        if isinstance(other, DlpAction):
            return self.severity <= other.severity
        return NotImplemented

    def __gt__(self, other: str) -> bool:
        if isinstance(other, DlpAction):
            return self.severity > other.severity
        return NotImplemented

    def __ge__(self, other: str) -> bool:
        if isinstance(other, DlpAction):
            return self.severity >= other.severity
        return NotImplemented


_SEVERITY = {action: rank for rank, action in enumerate(DlpAction)}


class Protection(enum.StrEnum):
    """What the sender asked for one message (API ``protection``, the console's compose)."""

    AUTO = "auto"  # SecureLine decides, per recipient, under the tenant's policy
    SECURE = "secure"  # message-level only: OpenPGP, S/MIME or the portal, never TLS alone


DEFAULT_ORDER: tuple[Method, ...] = (Method.PGP, Method.SMIME, Method.TLS, Method.PORTAL)
MESSAGE_LEVEL = frozenset({Method.PGP, Method.SMIME, Method.PORTAL})


@dataclass(frozen=True, slots=True)
class Policy:
    order: tuple[Method, ...] = DEFAULT_ORDER
    forbidden: frozenset[Method] = frozenset()
    force_portal: bool = False
    # When DLP finds PHI, TLS alone is not enough: the content itself must be encrypted.
    require_message_encryption_on_phi: bool = False
    # The sender chose "send securely" for this message (``Protection.SECURE``).
    message_level_only: bool = False

    def __post_init__(self) -> None:
        if len(set(self.order)) != len(self.order):
            raise ValueError("policy order lists a method twice")


@dataclass(frozen=True, slots=True)
class DlpFacts:
    phi_found: bool = False
    action: DlpAction = DlpAction.NONE
    summary: str = ""  # e.g. "ssn in text; icd10 in attachment[0]" — never the values


@dataclass(frozen=True, slots=True)
class KeyFact:
    """One known certificate for the recipient, already checked by its adapter."""

    fingerprint: str
    source: str  # uploaded | wkd | keyserver | autocrypt | harvested
    usable: bool
    problem: str = ""  # why not usable: "expired on 2026-01-01", "revoked", …

    @property
    def short(self) -> str:
        return f"0x{self.fingerprint[:16]}…" if len(self.fingerprint) > 16 else f"0x{self.fingerprint}"


class TlsState(enum.StrEnum):
    UNKNOWN = "unknown"  # not probed yet: try, the transport enforces the level
    MEETS = "meets"  # the last attempt/probe met the required level
    FAILS = "fails"  # it did not (no STARTTLS, bad certificate, MTA-STS mismatch …)


@dataclass(frozen=True, slots=True)
class TlsFacts:
    state: TlsState = TlsState.UNKNOWN
    detail: str = ""  # "verified certificate for mx1.example.org, TLSv1.3" / "MX offers no STARTTLS"


@dataclass(frozen=True, slots=True)
class PlainConsent:
    """The patient at this address asked this tenant for unencrypted mail, was warned of the
    risk and confirmed (164.524(c)(2) and HHS's access guidance); revocable, so present only
    while the request stands."""

    request_id: str
    confirmed_at: str  # ISO 8601
    via: str  # portal | staff


class PreferenceKind(enum.StrEnum):
    """What a patient may ask for under 164.522(b) (confidential communications)."""

    PORTAL_ONLY = "portal_only"  # reach me only through the secure portal
    REDIRECT = "redirect"  # no e-mail to this address: use this other one
    NO_SMS = "no_sms"  # never text me


@dataclass(frozen=True, slots=True)
class CommsPreference:
    """The patient's standing confidential-communication preferences at the message's tenant
    (45 CFR 164.522(b)), folded into one fact: revocable, so present only while they stand.

    With ``redirect_to`` the caller gives the *alternative* address's keys and plain-mail
    consent in ``RecipientFacts``, as that is where the message goes.
    """

    ids: tuple[str, ...]  # the register rows that make it up
    portal_only: bool = False
    redirect_to: str | None = None
    no_sms: bool = False

    @property
    def label(self) -> str:
        return f"(patient's preference {', '.join(self.ids)}; 164.522(b))"


@dataclass(frozen=True, slots=True)
class RecipientFacts:
    address: str
    pgp: tuple[KeyFact, ...] = ()
    smime: tuple[KeyFact, ...] = ()
    tls: TlsFacts = field(default_factory=TlsFacts)
    plain: PlainConsent | None = None
    preference: CommsPreference | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """``method`` is None when no allowed method can protect this recipient."""

    method: Method | None
    reason: str
    key: KeyFact | None = None
    # For method None, a stable token for why: tls_required | encryption_required | held |
    # no_method — what the delivery record's reason becomes.
    code: str = ""
    # Known keys that could not be used, each naming the key ("OpenPGP key 0x… revoked"):
    # already in ``reason``; kept apart for reasons written after the attempt (TLS).
    unusable_keys: tuple[str, ...] = ()
    # A patient's preference (164.522(b)): send to this address instead of the recipient's,
    # and whether a portal notice may also go by SMS.
    deliver_to: str | None = None
    sms: bool = True


_SOURCE_LABEL = {
    "uploaded": "the key directory",
    "wkd": "WKD",
    "keyserver": "the keyserver",
    "autocrypt": "Autocrypt",
    "harvested": "signed mail",
}


_KIND_LABEL = {Method.PGP: "OpenPGP", Method.SMIME: "S/MIME"}


def _pick(method: Method, keys: tuple[KeyFact, ...]) -> tuple[KeyFact | None, list[str]]:
    """The first usable key, or none and one phrase per known key naming it and its problem."""
    usable = [k for k in keys if k.usable]
    if usable:
        return usable[0], []
    kind = _KIND_LABEL[method]
    return None, [f"{kind} key {k.short} {k.problem}".strip() for k in keys]


def _chosen(method: Method, reason: str, unusable: list[str], key: KeyFact | None = None) -> Decision:
    # Issue 12: a fallback names the recipient keys it could not use, so "OpenPGP key
    # 0xABCD… expired on 2026-01-02" is on the record instead of a bare "tls" or "portal".
    extra = [u for u in unusable if u not in reason]
    return Decision(method, "; ".join([reason, *extra]), key, unusable_keys=tuple(unusable))


def _patient_requested(policy: Policy, facts: RecipientFacts, consent: PlainConsent) -> Decision:
    """The patient's own request outranks the tenant's preference for the portal or for TLS
    (HHS: the entity must send what was asked for once the patient confirmed after the
    warning); a key the patient published still encrypts, as it costs the patient nothing."""
    for method in (m for m in policy.order if m in (Method.PGP, Method.SMIME) and m not in policy.forbidden):
        key, _ = _pick(method, facts.pgp if method is Method.PGP else facts.smime)
        if key is not None:
            label = _SOURCE_LABEL.get(key.source, key.source)
            return Decision(method, f"{method}: key {key.short} from {label}", key)
    return Decision(
        Method.PLAIN,
        f"plain: patient-requested plain e-mail (request {consent.request_id}, warned and confirmed "
        f"{consent.confirmed_at} via {consent.via})",
    )


def _preferred(policy: Policy, dlp: DlpFacts, facts: RecipientFacts, pref: CommsPreference) -> Decision:
    """The patient's confidential-communication preference binds every other rule: "portal
    only" outranks even their own plain-mail request, and a redirect never falls back to the
    original address.  TLS alone is not used for a redirect: the alternative destination's
    capability is not what this delivery learned, so the content goes encrypted or by portal."""
    if pref.portal_only:
        if Method.PORTAL in policy.forbidden:
            why = f"no allowed method: the patient asked for the portal only {pref.label}; policy forbids it"
            decision = Decision(None, why, code="no_method")
        else:
            decision = Decision(
                Method.PORTAL, f"portal: the patient asked to be reached only through it {pref.label}"
            )
    else:
        inner = replace(facts, preference=None)
        if pref.redirect_to:
            policy = replace(policy, forbidden=policy.forbidden | {Method.TLS})
        decision = decide(policy, dlp, inner)
    notes = []
    if pref.redirect_to:
        notes.append(f"redirected to {pref.redirect_to} at the patient's request {pref.label}")
        decision = replace(decision, deliver_to=pref.redirect_to)
    if pref.no_sms:
        notes.append(f"no SMS notice {pref.label}")
        decision = replace(decision, sms=False)
    return replace(decision, reason="; ".join([decision.reason, *notes])) if notes else decision


def decide(policy: Policy, dlp: DlpFacts, facts: RecipientFacts) -> Decision:
    """Decide one recipient's method.  Pure: same facts, same decision."""
    if dlp.action in (DlpAction.BLOCK, DlpAction.QUARANTINE):
        # Intake stops these; reaching delivery means the caller skipped that step.
        return Decision(None, f"held: DLP action {dlp.action} ({dlp.summary})", code="held")
    if facts.preference is not None:
        return _preferred(policy, dlp, facts, facts.preference)
    if facts.plain is not None:
        return _patient_requested(policy, facts, facts.plain)
    if policy.force_portal:
        if Method.PORTAL in policy.forbidden:
            return Decision(None, "policy forces the portal but also forbids it", code="no_method")
        return Decision(Method.PORTAL, "portal: policy sends every message through the portal")
    if dlp.action is DlpAction.PORTAL_ONLY:
        if Method.PORTAL in policy.forbidden:
            return Decision(
                None, f"DLP requires the portal ({dlp.summary}) but policy forbids it", code="no_method"
            )
        return Decision(Method.PORTAL, f"portal: DLP rule requires the portal ({dlp.summary})")
    message_level_only = (
        policy.message_level_only
        or dlp.action is DlpAction.REQUIRE_ENCRYPTION
        or (dlp.phi_found and policy.require_message_encryption_on_phi)
    )
    skipped: list[str] = []
    unusable: list[str] = []  # known keys that could not be used, each naming the key
    code = "no_method"
    for method in policy.order:
        if method in policy.forbidden or method is Method.PLAIN:
            continue
        if method in (Method.PGP, Method.SMIME):
            keys = facts.pgp if method is Method.PGP else facts.smime
            key, problems = _pick(method, keys)
            if key is not None:
                label = _SOURCE_LABEL.get(key.source, key.source)
                what = "key" if method is Method.PGP else "certificate"
                return _chosen(method, f"{method}: {what} {key.short} from {label}", unusable, key)
            unusable.extend(problems)
            skipped.append("; ".join(problems) or f"{_KIND_LABEL[method]}: no key known")
        elif method is Method.TLS:
            if message_level_only:
                if policy.message_level_only and not dlp.summary:
                    skipped.append("TLS alone not allowed: the sender chose to send securely")
                else:
                    skipped.append(f"TLS alone not allowed: DLP found {dlp.summary or 'PHI'}")
                code = "encryption_required"
            elif facts.tls.state is TlsState.FAILS:
                skipped.append(facts.tls.detail or "destination cannot meet the TLS policy")
                code = "tls_required"
            elif facts.tls.state is TlsState.MEETS:
                return _chosen(Method.TLS, f"tls: {facts.tls.detail}".rstrip(": "), unusable)
            else:
                return _chosen(Method.TLS, "tls: required level enforced by the transport", unusable)
        elif method is Method.PORTAL:
            why = skipped[-1] if skipped else "policy prefers the portal"
            return _chosen(Method.PORTAL, f"portal: {why}", unusable)
    reason = "no allowed method: " + "; ".join(skipped) if skipped else "no method allowed"
    return Decision(None, reason, code=code)
