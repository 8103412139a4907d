"""An HTTP server on loopback that answers like Twilio's Messages API and calls back.

``POST /2010-04-01/Accounts/{sid}/Messages.json`` takes the form fields To, From, Body
and StatusCallback under HTTP basic auth (401 otherwise, 400 with Twilio's error body
for a bad number) and answers 201 with the message resource.  ``callback`` then posts a
status (or an inbound text) to a URL, signed the way Twilio signs: base64 HMAC-SHA1
with the auth token over the URL and the sorted parameters — computed here from the
documentation, not with Sealmail's helper.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx


@dataclass
class TwilioServer:
    account_sid: str = "AC0123456789abcdef0123456789abcdef"
    auth_token: str = "test-auth-token"
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = itertools.count(1)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                expected = (
                    "Basic " + base64.b64encode(f"{outer.account_sid}:{outer.auth_token}".encode()).decode()
                )
                outer.requests.append(
                    {"path": self.path, "form": form, "auth": self.headers.get("Authorization")}
                )
                if self.path != f"/2010-04-01/Accounts/{outer.account_sid}/Messages.json":
                    return self._json(404, {"code": 20404, "message": "not found", "status": 404})
                if self.headers.get("Authorization") != expected:
                    return self._json(401, {"code": 20003, "message": "Authenticate", "status": 401})
                if not form.get("To", "").startswith("+"):
                    return self._json(
                        400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}
                    )
                sid = f"SM{next(ids):032x}"
                self._json(201, {"sid": sid, "status": "queued", "to": form["To"], "from": form["From"],
                                 "body": form["Body"], "account_sid": outer.account_sid,
                                 "num_segments": str(_segments(form["Body"]))})  # fmt: skip

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> TwilioServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def sign(self, url: str, params: dict[str, str]) -> str:
        data = url + "".join(k + params[k] for k in sorted(params))
        return base64.b64encode(
            hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1).digest()
        ).decode()

    def callback(self, url: str, params: dict[str, str], *, signature: str | None = None) -> httpx.Response:
        headers = {"X-Twilio-Signature": signature if signature is not None else self.sign(url, params),
                   "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
        return httpx.post(url, content=urlencode(params), headers=headers, timeout=10)


def _segments(body: str) -> int:
    """Twilio's count, roughly: GSM-7 when ASCII (160, then 153 a part), else UCS-2 (70, 67)."""
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // part)
