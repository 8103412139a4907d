"""WebAuthn passkeys as a second factor: registration and authentication ceremonies.

The ceremonies are verified by py_webauthn (``webauthn``): the challenge is made here,
kept server-side bound to the session that asked for it, taken once and dead after five
minutes; the origin and RP ID must be the console's; the sign counter must advance.
A passkey belongs to one user; they list and remove their own in the console.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import InvalidRequest, NotFound, PermissionDenied
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.users import challenges
from sealmail.users.base import sha
from sealmail.users.model import Session, SignIn, SignInStatus, Stage
from sealmail.users.signin import SignInSteps
from sealmail.users.tables import console_passkeys

CEREMONY_TTL = timedelta(minutes=5)
REGISTER, SIGNIN = "pk-register", "pk-signin"
MAX_PASSKEYS = 10
MAX_CREDENTIAL_JSON = 16_384  # a real assertion or attestation ("none") is a few hundred bytes


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the passkeys are for: the console's host (RP ID) and exact origin."""

    id: str
    origin: str
    name: str = "Sealmail console"

    @classmethod
    def for_url(cls, url: str) -> RelyingParty | None:
        """None when the console is reached by an IP address: an RP ID must be a host name
        (WebAuthn §5.1.4.1), so passkeys need ``SEALMAIL_PUBLIC_URL`` with one."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            ipaddress.ip_address(host)
            return None
        except ValueError:
            pass
        return cls(host, f"{parts.scheme}://{parts.netloc}") if host else None


def _credential(raw: str) -> dict[str, Any]:
    if not raw or len(raw) > MAX_CREDENTIAL_JSON:
        raise InvalidRequest("the passkey response is missing or too large")
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest("the passkey response is not JSON") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("id"), str):
        raise InvalidRequest("the passkey response has no credential id")
    return parsed


@dataclass(frozen=True, slots=True)
class PasskeyRow:
    """One of a user's passkeys as their page lists it."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


class PasskeySteps(SignInSteps):
    rp: RelyingParty | None = None  # set by the composition root; None: passkeys off

    def _rp(self) -> RelyingParty:
        if self.rp is None:
            raise NotFound("passkeys are not configured on this server")
        return self.rp

    # -- registration (a signed-in user adds a passkey) -----------------------------------
    def registration_options(self, who: Session) -> str:
        """The ``PublicKeyCredentialCreationOptions`` as JSON; its challenge kept for the session."""
        rp, now = self._rp(), self.now()
        if who.stage is not Stage.ACTIVE:
            raise PermissionDenied("sign in first")
        with self.engine.begin() as conn:
            existing = self._credential_ids(conn, who.user_id)
            options = generate_registration_options(
                rp_id=rp.id, rp_name=rp.name, user_name=who.email, user_id=who.user_id.encode(),
                user_display_name=who.name,
                exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in existing],
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.DISCOURAGED,
                    user_verification=UserVerificationRequirement.PREFERRED,
                ),
            )  # fmt: skip
            challenges.put(
                conn, challenges.key(who.token_id, REGISTER), REGISTER,
                {"challenge": bytes_to_base64url(options.challenge)}, now, CEREMONY_TTL, who.tenant_id,
            )  # fmt: skip
        return options_to_json(options)

    def add_passkey(self, who: Session, name: str, credential_json: str) -> str:
        """Verify the authenticator's attestation and keep the credential: its row id."""
        rp, now = self._rp(), self.now()
        credential = _credential(credential_json)
        with self.engine.begin() as conn:
            state = challenges.take(conn, challenges.key(who.token_id, REGISTER), REGISTER, now)
            if state is None:
                raise InvalidRequest("the passkey request expired; try adding it again")
            try:
                verified = verify_registration_response(
                    credential=credential, expected_challenge=base64url_to_bytes(state["challenge"]),
                    expected_rp_id=rp.id, expected_origin=rp.origin,
                )  # fmt: skip
            except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
                raise InvalidRequest(f"the passkey could not be registered: {str(exc)[:200]}") from exc
            if len(self._credential_ids(conn, who.user_id)) >= MAX_PASSKEYS:
                raise InvalidRequest(f"at most {MAX_PASSKEYS} passkeys per person")
            cred_id = bytes_to_base64url(verified.credential_id)
            taken = conn.execute(
                sa.select(console_passkeys.c.id).where(console_passkeys.c.credential_id == cred_id)
            ).first()
            if taken is not None:
                raise InvalidRequest("that passkey is already registered")
            row_id = new_id("pk")
            conn.execute(
                sa.insert(console_passkeys).values(
                    id=row_id, tenant_id=who.tenant_id, user_id=who.user_id, credential_id=cred_id,
                    public_key=verified.credential_public_key, sign_count=verified.sign_count,
                    name=name.strip()[:100] or "Passkey", aaguid=str(verified.aaguid)[:36], created_at=now,
                )
            )  # fmt: skip
            audit.append(
                conn, action=AuditAction.USER_PASSKEY_ADDED, actor=who.actor, tenant_id=who.tenant_id,
                target=who.user_id, details={"passkey": row_id, "aaguid": str(verified.aaguid)},
            )  # fmt: skip
        return row_id

    def list_passkeys(self, who: Session) -> list[PasskeyRow]:
        pk = console_passkeys.c
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(pk.id, pk.name, pk.created_at, pk.last_used_at)
                .where(pk.tenant_id == who.tenant_id, pk.user_id == who.user_id)
                .order_by(pk.created_at)
            ).all()
        return [PasskeyRow(*r) for r in rows]

    def remove_passkey(self, who: Session, passkey_id: str) -> None:
        with self.engine.begin() as conn:
            gone = conn.execute(
                sa.delete(console_passkeys).where(
                    console_passkeys.c.tenant_id == who.tenant_id,
                    console_passkeys.c.user_id == who.user_id,
                    console_passkeys.c.id == passkey_id,
                )
            ).rowcount
            if not gone:
                raise NotFound("no such passkey of yours")
            audit.append(
                conn, action=AuditAction.USER_PASSKEY_REMOVED, actor=who.actor, tenant_id=who.tenant_id,
                target=who.user_id, details={"passkey": passkey_id},
            )  # fmt: skip

    # -- authentication (the second sign-in step) ------------------------------------------
    def signin_options(self, token: str) -> str | None:
        """Assertion options for the password-accepted session, or None (no passkeys)."""
        if self.rp is None:
            return None
        now = self.now()
        with self.engine.begin() as conn:
            s = self._session_row(conn, token, now, Stage.MFA)
            if s is None:
                return None
            existing = self._credential_ids(conn, s.user_id)
            if not existing:
                return None
            options = generate_authentication_options(
                rp_id=self.rp.id,
                allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in existing],
                user_verification=UserVerificationRequirement.PREFERRED,
            )
            challenges.put(
                conn, challenges.key(sha(token), SIGNIN), SIGNIN,
                {"challenge": bytes_to_base64url(options.challenge)}, now, CEREMONY_TTL, s.tenant_id,
            )  # fmt: skip
        return options_to_json(options)

    def verify_passkey(self, token: str, credential_json: str) -> SignIn:
        """Second factor by passkey: OK carries the signed-in session's new token."""
        rp, now = self._rp(), self.now()
        try:
            credential = _credential(credential_json)
        except InvalidRequest:
            credential = {"id": ""}
        with self.engine.begin() as conn:
            s, user, refused = self._mfa_pending(conn, token, now)
            if refused is not None:
                return refused
            state = challenges.take(conn, challenges.key(sha(token), SIGNIN), SIGNIN, now)
            if state is not None and self._assertion_holds(conn, user, credential, state, rp, now):
                return SignIn(SignInStatus.OK, self._complete_signin(conn, s, user, now, "passkey"))
            locked = self._fail(conn, user.id, now, "passkey")
        if locked:
            self._locked_alert(user.id)
        return SignIn(SignInStatus.LOCKED if locked else SignInStatus.WRONG)

    def _assertion_holds(
        self, conn: Connection, user: Any, credential: dict[str, Any], state: dict[str, Any],
        rp: RelyingParty, now: datetime,
    ) -> bool:  # fmt: skip
        pk = console_passkeys.c
        row = conn.execute(
            sa.select(console_passkeys)
            .where(pk.user_id == user.id, pk.credential_id == str(credential["id"])[:1400])
            .with_for_update()
        ).first()
        if row is None:
            return False
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=base64url_to_bytes(state["challenge"]),
                expected_rp_id=rp.id, expected_origin=rp.origin, credential_public_key=row.public_key,
                credential_current_sign_count=row.sign_count,
            )  # fmt: skip
        except (WebAuthnException, ValueError, KeyError, TypeError):
            return False
        conn.execute(
            sa.update(console_passkeys)
            .where(console_passkeys.c.id == row.id)
            .values(sign_count=verified.new_sign_count, last_used_at=now)
        )
        return True

    @staticmethod
    def _credential_ids(conn: Connection, user_id: str) -> list[bytes]:
        ids = conn.execute(
            sa.select(console_passkeys.c.credential_id).where(console_passkeys.c.user_id == user_id)
        ).scalars()
        return [base64url_to_bytes(c) for c in ids]
