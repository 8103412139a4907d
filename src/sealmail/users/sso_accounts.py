"""Single sign-on on the database side: a tenant's OP configuration, sign-in flows in
progress, and mapping a verified identity to a console user.

A person signs in by SSO only as a user of the tenant that configured it: matched by the
verified email address the first time (an invitation), then by the OP's subject bound to
the account; nobody is created unless the owner set a default role for newcomers.  The
client secret is sealed under the console's site key (``vault``), bound to the tenant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.crypto import vault
from sealmail.errors import InvalidRequest, PermissionDenied
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import sender_domains
from sealmail.users import challenges, roles
from sealmail.users.base import UsersBase, sha
from sealmail.users.model import Session, Stage
from sealmail.users.tables import console_sso, console_users

FLOW = "sso"
FLOW_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class SsoConfig:
    tenant_id: str
    issuer: str
    client_id: str
    client_secret: str
    email_domain: str
    default_role: str | None
    require_mfa: bool = True


@dataclass(frozen=True, slots=True)
class SsoFlow:
    """A sign-in in progress, kept server-side under its ``state`` (one-time, ten minutes)."""

    tenant_id: str
    nonce: str  # OIDC Core §3.1.2.1: the ID token must carry it back
    verifier: str  # RFC 7636 PKCE code verifier
    binding: str  # SHA-256 of the cookie value of the browser that started


@dataclass(frozen=True, slots=True)
class SsoSettings:
    """A tenant's single sign-on set-up as its settings page shows it (never the secret)."""

    issuer: str
    client_id: str
    email_domain: str
    default_role: str | None
    enabled: bool
    require_mfa: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SsoSignedIn:
    """An identity the OP vouched for, as a console session: ``ACTIVE`` (signed in) or ``MFA``
    (the OP reported no multi-factor sign-in and the policy requires one: the person's own
    second factor, TOTP or a passkey, is asked as after a password)."""

    token: str
    stage: Stage


class SsoRefused(Exception):
    """Why an identity may not sign in (audited; the browser sees a generic refusal)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _secret_aad(tenant_id: str) -> bytes:
    return f"sealmail/console-sso-secret/{tenant_id}".encode()


class SsoAccounts(UsersBase):
    def sso_settings(self, tenant_id: str) -> SsoSettings | None:
        """What the settings page shows (never the secret)."""
        c = console_sso.c
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(
                    c.issuer, c.client_id, c.email_domain, c.default_role, c.enabled, c.require_mfa,
                    c.updated_at,
                )
                .where(c.tenant_id == tenant_id)
            ).first()  # fmt: skip
        return SsoSettings(*row) if row else None

    def configure_sso(
        self, who: Session, *, issuer: str, client_id: str, client_secret: str, email_domain: str,
        default_role: str | None, enabled: bool, require_mfa: bool = True,
    ) -> None:  # fmt: skip
        """Set the tenant's OP; an empty secret keeps the stored one."""
        if not who.may(roles.Permission.MANAGE_SIGNIN_POLICY):
            raise PermissionDenied("only an owner changes how people sign in")
        domain = email_domain.strip().lower().rstrip(".")
        if default_role is not None and (
            default_role not in set(roles.Role) or default_role == roles.Role.OWNER
        ):
            raise InvalidRequest("newcomers may get any role but owner, or none")
        if not client_id.strip() or len(client_id) > 200 or len(client_secret) > 500:
            raise InvalidRequest("give the client id (and secret) registered at the identity provider")
        key, now = self.seed_key(), self.now()
        with self.engine.begin() as conn:
            self._check_domain(conn, who.tenant_id, domain)
            old = conn.execute(sa.select(console_sso).where(console_sso.c.tenant_id == who.tenant_id)).first()
            if client_secret:
                sealed = vault.seal(key, client_secret.encode(), _secret_aad(who.tenant_id))
            elif old is not None:
                sealed = old.client_secret
            else:
                raise InvalidRequest("give the client secret")
            values: dict[str, Any] = {
                "issuer": issuer, "client_id": client_id.strip(), "email_domain": domain,
                "default_role": default_role, "enabled": enabled, "updated_at": now, "updated_by": who.actor,
                "require_mfa": require_mfa,
                "client_secret": sealed,
            }  # fmt: skip
            if old is None:
                conn.execute(sa.insert(console_sso).values(tenant_id=who.tenant_id, **values))
            else:
                conn.execute(
                    sa.update(console_sso).where(console_sso.c.tenant_id == who.tenant_id).values(**values)
                )
            audit.append(
                conn, action=AuditAction.SSO_CONFIGURED, actor=who.actor, tenant_id=who.tenant_id,
                target=who.tenant_id,
                details={"issuer": issuer, "client_id": client_id, "email_domain": domain,
                         "default_role": default_role, "enabled": enabled, "require_mfa": require_mfa,
                         "secret_changed": bool(client_secret)},
            )  # fmt: skip

    @staticmethod
    def _check_domain(conn: Connection, tenant_id: str, domain: str) -> None:
        verified = conn.execute(
            sa.select(sender_domains.c.id).where(
                sender_domains.c.tenant_id == tenant_id,
                sender_domains.c.name == domain,
                sender_domains.c.verified_at.is_not(None),
            )
        ).first()
        if verified is None:
            raise InvalidRequest("the email domain must be one of this organization's verified domains")
        other = conn.execute(
            sa.select(console_sso.c.tenant_id).where(
                console_sso.c.email_domain == domain, console_sso.c.tenant_id != tenant_id
            )
        ).first()
        if other is not None:
            raise InvalidRequest("another organization signs in that domain")

    def sso_for_email(self, email: str) -> SsoConfig | None:
        """The enabled configuration whose domain the address is at."""
        domain = email.strip().lower().rsplit("@", 1)[-1]
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(console_sso).where(console_sso.c.email_domain == domain, console_sso.c.enabled)
            ).first()
        return self._config(row) if row else None

    def sso_config(self, tenant_id: str) -> SsoConfig | None:
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(console_sso).where(console_sso.c.tenant_id == tenant_id, console_sso.c.enabled)
            ).first()
        return self._config(row) if row else None

    def _config(self, row: Any) -> SsoConfig:
        secret = vault.open_sealed(self.seed_key(), row.client_secret, _secret_aad(row.tenant_id)).decode()
        return SsoConfig(
            row.tenant_id,
            row.issuer,
            row.client_id,
            secret,
            row.email_domain,
            row.default_role,
            row.require_mfa,
        )

    # -- flows in progress ------------------------------------------------------------------
    def keep_flow(self, state: str, flow: SsoFlow) -> None:
        with self.engine.begin() as conn:
            challenges.put(conn, sha(state), FLOW, asdict(flow), self.now(), FLOW_TTL, flow.tenant_id)

    def take_flow(self, state: str) -> SsoFlow | None:
        with self.engine.begin() as conn:
            data = challenges.take(conn, sha(state), FLOW, self.now())
        if data is None:
            return None
        return SsoFlow(data["tenant_id"], data["nonce"], data["verifier"], data["binding"])

    def sso_refused(self, tenant_id: str, reason: str, issuer: str) -> None:
        with self.engine.begin() as conn:
            audit.append(
                conn, action=AuditAction.USER_SSO_REFUSED, actor="system", tenant_id=tenant_id,
                target="unknown", details={"reason": reason[:300], "issuer": issuer},
            )  # fmt: skip

    # -- the identity, verified, becomes a session -------------------------------------------
    def sso_signin(self, config: SsoConfig, claims: dict[str, Any]) -> SsoSignedIn | None:
        """The session for the user the verified claims name; None when refused (audited)."""
        now = self.now()
        subject = f"{config.issuer} {claims['sub']}"[:600]
        email = str(claims.get("email", "")).strip().lower()
        with self.engine.begin() as conn:
            try:
                user = self._sso_user(conn, config, subject, email, claims, now)
                stage = self._sso_stage(config, user, claims)
            except SsoRefused as refused:
                audit.append(
                    conn, action=AuditAction.USER_SSO_REFUSED, actor="system", tenant_id=config.tenant_id,
                    target=email[:200] or "unknown",
                    details={"reason": refused.reason, "issuer": config.issuer},
                )  # fmt: skip
                return None
            token = self._new_session(conn, user, stage, now)
            if stage is Stage.MFA:
                audit.append(
                    conn, action=AuditAction.USER_SSO_SECOND_FACTOR, actor=f"user:{user.id}",
                    tenant_id=user.tenant_id, target=user.id,
                    details={"reason": "op_did_not_report_mfa", "issuer": config.issuer},
                )  # fmt: skip
            else:
                audit.append(
                    conn, action=AuditAction.USER_SIGNED_IN, actor=f"user:{user.id}",
                    tenant_id=user.tenant_id, target=user.id,
                    details={"factor": "sso", "issuer": config.issuer},
                )  # fmt: skip
        return SsoSignedIn(token, stage)

    @staticmethod
    def _sso_stage(config: SsoConfig, user: Any, claims: dict[str, Any]) -> Stage:
        """ACTIVE when the OP reported MFA (RFC 8176 ``amr``) or the policy does not ask for
        it; else MFA when the person has a second factor of their own here; else refused."""
        amr = claims.get("amr")
        if not config.require_mfa or (isinstance(amr, list) and "mfa" in amr):
            return Stage.ACTIVE
        if user.totp_secret is not None:
            return Stage.MFA
        raise SsoRefused("op_did_not_report_mfa")

    def _sso_user(
        self,
        conn: Connection,
        config: SsoConfig,
        subject: str,
        email: str,
        claims: dict[str, Any],
        now: datetime,
    ) -> Any:
        cu = console_users.c
        bound = conn.execute(
            sa.select(console_users).where(cu.tenant_id == config.tenant_id, cu.sso_subject == subject)
        ).first()
        if bound is None:
            if claims.get("email_verified") is not True:
                raise SsoRefused("email_not_verified")
            if email.rsplit("@", 1)[-1] != config.email_domain:
                raise SsoRefused("email_domain_not_allowed")
            bound = conn.execute(
                sa.select(console_users)
                .where(cu.tenant_id == config.tenant_id, cu.email == email)
                .with_for_update()
            ).first()
            if bound is None:
                bound = self._newcomer(conn, config, email, claims, now)
            elif bound.sso_subject is not None:
                raise SsoRefused("account_bound_to_another_subject")
            conn.execute(sa.update(console_users).where(cu.id == bound.id).values(sso_subject=subject))
            audit.append(
                conn, action=AuditAction.USER_SSO_LINKED, actor=f"user:{bound.id}",
                tenant_id=config.tenant_id, target=bound.id, details={"issuer": config.issuer},
            )  # fmt: skip
        if not self._usable(bound, now):
            raise SsoRefused("account_disabled_or_expired")
        if bound.locked_until is not None and bound.locked_until > now:
            raise SsoRefused("account_locked")
        return bound

    def _newcomer(
        self, conn: Connection, config: SsoConfig, email: str, claims: dict[str, Any], now: datetime
    ) -> Any:
        if config.default_role is None:
            raise SsoRefused("not_invited")
        user_id = new_id("usr")
        name = str(claims.get("name") or email)[:200]
        expires = (
            now + timedelta(days=self.policy.auditor_days)
            if config.default_role == roles.Role.AUDITOR
            else None
        )
        conn.execute(
            sa.insert(console_users).values(
                id=user_id, tenant_id=config.tenant_id, email=email, name=name, role=config.default_role,
                recovery_hashes=[], failed_signins=0, expires_at=expires, created_at=now, created_by="sso",
            )
        )  # fmt: skip
        audit.append(
            conn, action=AuditAction.USER_INVITED, actor="sso", tenant_id=config.tenant_id, target=user_id,
            details={"role": config.default_role, "via": "sso_just_in_time"},
        )  # fmt: skip
        return conn.execute(sa.select(console_users).where(console_users.c.id == user_id)).one()
