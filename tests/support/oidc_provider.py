"""A small OpenID Provider on loopback over TLS, for single sign-on tests.

It follows OIDC Core 1.0 and Discovery 1.0 for the authorization code flow: a discovery
document, ``/authorize`` (response_type=code, a registered client and redirect URI, scope
``openid``, PKCE S256 required per RFC 7636 / OAuth 2.1), ``/token`` (client_secret_basic
or client_secret_post, one-time codes bound to client, redirect URI and verifier) and
``/jwks``.  ID tokens are RS256 JWTs signed with joserfc carrying iss, sub, aud, exp, iat,
auth_time, nonce and the email claims.  There is no login page: the test says who is
signed in at the OP (``person``); ``forge`` lets a test make the OP misbehave on purpose.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from tests.support.ca import TestCA
from tests.support.uvicorn_thread import ThreadServer
from tests.support.waiting import wait_until


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid}, private=True)


@functools.cache
def _signing_key() -> RSAKey:
    """The OP's own key, one per process: generating RSA-2048 cost every test about 0.1 s, and
    each test's OP has its own issuer; the forged-key tests make theirs with ``new_key``."""
    return new_key("op-1")


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    person: dict[str, Any]
    expires: float


@dataclass
class Provider:
    issuer: str = ""
    client_id: str = "sealmail-console"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redirect_uris: list[str] = field(default_factory=list)
    person: dict[str, Any] = field(default_factory=dict)
    # Changes applied to the next ID tokens' claims or header, to test the relying party's checks.
    forge: dict[str, Any] = field(default_factory=dict)
    key: RSAKey = field(default_factory=_signing_key)
    codes: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    # -- endpoints ------------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid", "email"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified"],
                "authorization_response_iss_parameter_supported": True,
            }
        )  # fmt: skip

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        # An unknown client or redirect URI is never redirected to (OIDC Core §3.1.2.6).
        if q.get("client_id") != self.client_id or q.get("redirect_uri") not in self.redirect_uris:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        redirect = q["redirect_uri"]

        def back(**params: str) -> Response:
            params = {**params, "iss": self.issuer, **({"state": q["state"]} if "state" in q else {})}
            return RedirectResponse(f"{redirect}?{urlencode(params)}", status_code=302)

        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return back(error="unsupported_response_type")
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) != 43:
            return back(error="invalid_request", error_description="PKCE S256 required")
        if not self.person:
            return back(error="access_denied")
        code = secrets.token_urlsafe(32)
        self.codes[code] = Grant(
            self.client_id, redirect, q.get("nonce"), q["code_challenge"], dict(self.person), time.time() + 60
        )
        return back(code=code)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        client_id, secret = self._client(request, form)
        if client_id != self.client_id or not secrets.compare_digest(secret, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(str(form.get("code", "")), None)  # one use only
        if form.get("grant_type") != "authorization_code" or grant is None or grant.expires < time.time():
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if form.get("redirect_uri") != grant.redirect_uri or computed != grant.challenge:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": grant.person["sub"], "aud": self.client_id, "exp": now + 300,
            "iat": now, "auth_time": now, "amr": ["pwd", "mfa"],
            **({"nonce": grant.nonce} if grant.nonce else {}),
            **{k: v for k, v in grant.person.items() if k != "sub"},
        }  # fmt: skip
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}
        signer = self.key
        for name, value in self.forge.items():
            if name == "key":
                signer = value
                header["kid"] = value.kid
            elif value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        id_token = jwt.encode(header, claims, signer)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    @staticmethod
    def _client(request: Request, form: dict[str, Any]) -> tuple[str, str]:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            from urllib.parse import unquote_plus

            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return unquote_plus(user), unquote_plus(password)
        return str(form.get("client_id", "")), str(form.get("client_secret", ""))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )


@contextmanager
def oidc_provider(ca: TestCA) -> Iterator[Provider]:
    """The OP at ``https://127.0.0.1:<port>`` with a certificate from ``ca``."""
    op = Provider()
    cert = ca.issue("127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="sealmail-op-") as tmp:
        certfile, keyfile = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        certfile.write_bytes(cert.cert_pem)
        keyfile.write_bytes(cert.key_pem)
        server = ThreadServer(
            uvicorn.Config(
                op.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                ssl_certfile=str(certfile), ssl_keyfile=str(keyfile),
            )
        )  # fmt: skip
        thread = threading.Thread(target=server.run, name="oidc-provider", daemon=True)
        thread.start()
        try:
            wait_until(lambda: server.started or not thread.is_alive(), 10, "the OP did not start")
            port = server.servers[0].sockets[0].getsockname()[1]
            op.issuer = f"https://127.0.0.1:{port}"
            yield op
        finally:
            server.stop()
            thread.join(10)
