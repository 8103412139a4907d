"""Single sign-on by OpenID Connect (Entra ID, Google Workspace): the authorization code
flow with PKCE, ``state`` and ``nonce`` (OIDC Core §3.1).

``start`` picks the tenant by the email domain the person types, keeps the flow's state,
nonce, PKCE verifier and a browser binding server-side (one-time, ten minutes), and gives
the OP's authorization URL.  ``finish`` takes the flow back by ``state`` — only from the
browser that started it — exchanges the code, verifies the ID token (``oidc.py``) and
maps the identity to a console user (``sso_accounts.py``).  Every refusal is audited.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass

from sealmail.users.base import sha
from sealmail.users.oidc import OidcClient, OidcError
from sealmail.users.service import Users
from sealmail.users.sso_accounts import SsoFlow, SsoSignedIn


@dataclass(frozen=True, slots=True)
class Started:
    url: str  # the OP's authorization endpoint with this flow's parameters
    binding: str  # a cookie value: the callback must come from the browser that started


class SingleSignOn:
    def __init__(self, users: Users, oidc: OidcClient, redirect_uri: str) -> None:
        self.users = users
        self.oidc = oidc
        self.redirect_uri = redirect_uri  # the console's /sso/callback, as registered at the OP

    async def start(self, email: str) -> Started | None:
        """None when no tenant signs that address's domain in by SSO."""
        config = await asyncio.to_thread(self.users.sso_for_email, email)
        if config is None:
            return None
        try:
            provider = await self.oidc.provider(config.issuer)
        except OidcError as exc:
            await asyncio.to_thread(self.users.sso_refused, config.tenant_id, exc.reason, config.issuer)
            return None
        state, nonce, verifier, binding = (secrets.token_urlsafe(32) for _ in range(4))
        flow = SsoFlow(config.tenant_id, nonce, verifier, sha(binding))
        await asyncio.to_thread(self.users.keep_flow, state, flow)
        url = OidcClient.authorize_url(
            provider, config.client_id, self.redirect_uri, state, nonce, verifier, email.strip()[:320]
        )
        return Started(url, binding)

    async def finish(self, state: str, code: str, binding: str, iss: str | None) -> SsoSignedIn | None:
        """The session the sign-in opened (signed in, or its second factor still to give);
        None when refused (the reason is in the audit log)."""
        flow = await asyncio.to_thread(self.users.take_flow, state[:200]) if state else None
        if flow is None:
            return None
        config = await asyncio.to_thread(self.users.sso_config, flow.tenant_id)
        if config is None:
            return None
        try:
            if not binding or not hmac.compare_digest(flow.binding, sha(binding)):
                raise OidcError("the callback came from a browser that did not start this sign-in")
            if iss is not None and iss != config.issuer:  # RFC 9207 mix-up defence
                raise OidcError("the callback names another issuer")
            if not code:
                raise OidcError("the OP sent no code (the person cancelled or was refused)")
            provider = await self.oidc.provider(config.issuer)
            id_token = await self.oidc.exchange(
                provider,
                config.client_id,
                config.client_secret,
                code[:2000],
                self.redirect_uri,
                flow.verifier,
            )
            claims = await self.oidc.verify(
                provider, id_token, config.client_id, flow.nonce, self.users.now()
            )
        except OidcError as exc:
            await asyncio.to_thread(self.users.sso_refused, config.tenant_id, exc.reason, config.issuer)
            return None
        return await asyncio.to_thread(self.users.sso_signin, config, claims)
