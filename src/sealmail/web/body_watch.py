"""What ``BodyLimit`` checks in a request body as it streams in, and how a refusal is answered.

Three checks, each on the bytes as they arrive (never a second parse):

* **Size.**  A chunked body has no Content-Length to refuse up front; it is counted and
  refused the moment it passes the limit.
* **NUL in a JSON string** (``\\u0000``, the only way UTF-8 JSON can carry one).  PostgreSQL
  text cannot hold NUL, so a string with one reached the driver as an error (a 500) wherever
  a route had not checked for it; SMTP intake refuses NUL too (``intake_limits``).  One check
  here covers every ``/v1`` body, the way ``NoNul`` covers every path and query.  A NUL
  *byte* means the body is not UTF-8 JSON at all (RFC 8259 §8.1: UTF-16 and UTF-32 JSON,
  which the decoder would take, are full of them) and is refused too.
* **A lone surrogate escape** (``\\ud800`` without its low half, or a low half alone).  The
  JSON decoder takes it (RFC 8259 §8.2 leaves it undefined) and makes a ``str`` that has no
  UTF-8 form: a marketing contact holding one was stored, then every answer that carried it
  failed (a 500 on the save, the tenant's contact export cut off mid-stream), and PostgreSQL
  ``jsonb`` refused it as a driver error.  Refused here as a 422 for every ``/v1`` body.

A refusal cannot simply be raised from ``receive``: FastAPI turns any exception from reading
the body into ``400 There was an error parsing the body``.  So the refusal is remembered,
whatever the app answers meanwhile is dropped, and the refusal's own problem (413, 422 or 400)
is sent in its place.
"""

from __future__ import annotations

import re

from starlette.types import Message, Receive, Send

from sealmail.errors import InvalidRequest, PayloadTooLarge, SealmailError, ValidationFailed

# A ``\u0000`` escape preceded by an even number of backslashes (none, or escaped ones):
# ``\\u0000`` in JSON is the six characters ``\u0000``, not NUL.
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# A ``\uD…`` escape in the same even-backslash context, with the low half that may follow it:
# group 1 is the escape's second hex digit (8–b: a high half, c–f: a low half, 0–7: no
# surrogate) and group 2 the low half that pairs a high one.
D_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u[dD]([0-9a-fA-F])[0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})?")
_NEEDLES = (b"u0000", b"\\ud", b"\\uD")
_TAIL = max(len(n) for n in _NEEDLES)


def has_nul_escape(body: bytes) -> bool:
    return NUL_ESCAPE.search(body) is not None


def has_lone_surrogate(body: bytes) -> bool:
    """Whether a JSON text escapes half a UTF-16 surrogate pair without the other half."""
    for m in D_ESCAPE.finditer(body):
        half = m.group(1).lower()
        if half in b"cdef" or (half in b"89ab" and m.group(2) is None):
            return True
    return False


class BodyWatch:
    """One request's body checks: ``receive`` and ``send`` to hand the app, then ``refused``."""

    def __init__(self, receive: Receive, send: Send, limit: int, *, json_strings: bool) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.json_strings = json_strings
        self.received = 0
        self.refused: SealmailError | None = None
        self.started = False
        self._chunks: list[bytes] = []
        self._tail = b""
        self._candidate = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            self.received += len(chunk)
            if self.received > self.limit:
                self._refuse(PayloadTooLarge(f"body exceeds {self.limit} bytes (SEALMAIL_MAX_REQUEST_BYTES)"))
            if self.json_strings:
                self._scan(chunk, more=bool(message.get("more_body", False)))
        return message

    async def send(self, message: Message) -> None:
        if self.refused is not None and not self.started:
            return  # the app's answer to a refused body (FastAPI's 400); ours goes instead
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    def _scan(self, chunk: bytes, *, more: bool) -> None:
        if b"\0" in chunk:
            # UTF-8 JSON never holds a NUL byte (a control in a string must be escaped);
            # UTF-16 and UTF-32 JSON always do, and the JSON decoder takes those too: a NUL
            # escape in them would pass the byte scan below unseen.
            self._refuse(InvalidRequest("send the body as UTF-8 JSON (RFC 8259 §8.1); it holds a NUL byte"))
        # The chunks are the objects the app keeps too (no copy); they are joined only when
        # a needle was seen, to tell an escaped backslash from a NUL or surrogate escape.
        self._chunks.append(chunk)
        seam = self._tail + chunk[:_TAIL]
        if any(n in chunk or n in seam for n in _NEEDLES):
            self._candidate = True
        self._tail = (self._tail + chunk)[-_TAIL:]
        if more:
            return
        if not self._candidate:
            self._chunks = []
            return
        body, self._chunks = b"".join(self._chunks), []
        if has_nul_escape(body):
            self._refuse(
                ValidationFailed([{"field": "body", "message": "a string must not contain NUL (\\u0000)"}])
            )
        if has_lone_surrogate(body):
            message = "a string must not contain half a surrogate pair (\\ud800-\\udfff alone)"
            self._refuse(ValidationFailed([{"field": "body", "message": message}]))

    def _refuse(self, error: SealmailError) -> None:
        self.refused = error
        raise error
