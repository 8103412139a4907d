"""The OpenID Connect relying party's network side: discovery, the code exchange, ID tokens.

Every fetch goes through the SSRF-safe client (``net/http_client.py``: https only, public
addresses only unless a test allows loopback, no redirects, bounded bodies).  The ID token
is verified with joserfc (the JOSE library of the Authlib project) against the OP's JWKS:
an asymmetric signature only (``none`` and HMAC are refused), ``iss`` exactly the
configured issuer, ``aud`` holding our client id (and ``azp`` ours when there are several),
``exp`` in the future, ``iat`` not, ``nonce`` the one this sign-in sent (OIDC Core §3.1.3.7).
PKCE (RFC 7636, S256) binds the code to this sign-in's verifier.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from sealmail.net.http_client import FetchError, SafeHttpClient

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
CACHE_SECONDS = 3600.0
LEEWAY = 120  # seconds of clock difference tolerated between us and the OP
MAX_DOC = 256 * 1024


class OidcError(Exception):
    """The OP or its answer failed a check; ``reason`` is logged and audited, never shown raw."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def check_issuer(issuer: str) -> str:
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise OidcError("the issuer must be an https URL without query, fragment or user")
    return issuer


class OidcClient:
    def __init__(self, http: SafeHttpClient) -> None:
        self.http = http
        self._providers: dict[str, tuple[float, Provider]] = {}
        self._keys: dict[str, tuple[float, KeySet]] = {}

    async def _json(self, url: str, *, post: dict[str, str] | None = None, auth: str | None = None) -> Any:
        try:
            if post is None:
                r = await self.http.get(url, accept="application/json", max_bytes=MAX_DOC)
            else:
                headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
                if auth:
                    headers["Authorization"] = auth
                r = await self.http.post(url, urlencode(post).encode(), headers, max_bytes=MAX_DOC)
        except FetchError as exc:
            raise OidcError(f"fetch failed: {exc.reason}") from exc
        if r.status != 200:
            raise OidcError(f"{urlsplit(url).path or '/'} answered {r.status}")
        try:
            return r.json()
        except ValueError as exc:
            raise OidcError("the OP answered something other than JSON") from exc

    async def provider(self, issuer: str) -> Provider:
        """OpenID Provider metadata (OIDC Discovery §4), its ``issuer`` the one configured."""
        cached = self._providers.get(issuer)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        doc = await self._json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(doc, dict) or doc.get("issuer") != issuer:
            raise OidcError("the discovery document names another issuer")
        try:
            found = Provider(
                issuer, str(doc["authorization_endpoint"]), str(doc["token_endpoint"]), str(doc["jwks_uri"])
            )
        except KeyError as exc:
            raise OidcError(f"the discovery document lacks {exc}") from exc
        for url in (found.authorization_endpoint, found.token_endpoint, found.jwks_uri):
            if urlsplit(url).scheme != "https":
                raise OidcError("an OP endpoint is not https")
        self._providers[issuer] = (time.monotonic() + CACHE_SECONDS, found)
        return found

    @staticmethod
    def authorize_url(
        provider: Provider,
        client_id: str,
        redirect_uri: str,
        state: str,
        nonce: str,
        verifier: str,
        login_hint: str,
    ) -> str:
        query = {
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
            "scope": "openid email profile", "state": state, "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
            "login_hint": login_hint,
        }  # fmt: skip
        sep = "&" if "?" in provider.authorization_endpoint else "?"
        return provider.authorization_endpoint + sep + urlencode(query)

    async def exchange(
        self, provider: Provider, client_id: str, secret: str, code: str, redirect_uri: str, verifier: str
    ) -> str:
        """The authorization code for an ID token (client_secret_basic, RFC 6749 §2.3.1)."""
        basic = base64.b64encode(f"{_form(client_id)}:{_form(secret)}".encode()).decode()
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier}  # fmt: skip
        doc = await self._json(provider.token_endpoint, post=body, auth=f"Basic {basic}")
        token = doc.get("id_token") if isinstance(doc, dict) else None
        if not isinstance(token, str):
            raise OidcError("the token response has no id_token")
        return token

    async def _key_set(self, jwks_uri: str, *, fresh: bool) -> KeySet:
        cached = self._keys.get(jwks_uri)
        if cached and not fresh and cached[0] > time.monotonic():
            return cached[1]
        doc = await self._json(jwks_uri)
        try:
            keys = KeySet.import_key_set(doc)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcError("the OP's JWKS could not be read") from exc
        self._keys[jwks_uri] = (time.monotonic() + CACHE_SECONDS, keys)
        return keys

    async def verify(
        self, provider: Provider, id_token: str, client_id: str, nonce: str, now: datetime
    ) -> dict[str, Any]:
        """The ID token's claims, once every check of OIDC Core §3.1.3.7 holds."""
        token = None
        for fresh in (False, True):  # an unknown kid after a key rotation: fetch the set once more
            keys = await self._key_set(provider.jwks_uri, fresh=fresh)
            try:
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
                break
            except JoseError as exc:
                if fresh:
                    raise OidcError(f"the ID token's signature does not verify: {exc.error}") from exc
            except (ValueError, RecursionError) as exc:
                # RecursionError: signed claims of a few thousand "[" (json.loads after the
                # signature check; the OP is the tenant's choice, not ours).
                raise OidcError("the ID token is malformed") from exc
        assert token is not None
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": client_id},
            nonce={"essential": True, "value": nonce},
            sub={"essential": True},
            leeway=LEEWAY,
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise OidcError(f"the ID token failed a claim check: {exc.description or exc.error}") from exc
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
            raise OidcError("the ID token is for several audiences and not authorized for us")
        t = now.timestamp()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + LEEWAY <= t:
            raise OidcError("the ID token has expired")
        if not isinstance(iat, int | float) or iat - LEEWAY > t:
            raise OidcError("the ID token was issued in the future")
        return claims


def _form(value: str) -> str:
    """RFC 6749 §2.3.1: client id and secret are form-urlencoded before Basic encoding."""
    return urlencode({"": value})[1:]
