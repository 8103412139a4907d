"""STARTTLS through the running loop's ``start_tls``: on uvloop, TLS in compiled code.

aiosmtpd's ``smtp_STARTTLS`` builds an ``asyncio.sslproto.SSLProtocol`` itself, so every TLS
record of a session went through pure Python whatever the loop.  This one hands the
transport to ``loop.start_tls`` and keeps what aiosmtpd's does: 220 first; anything the
client sent behind STARTTLS in the clear is discarded (RFC 3207 §5, command injection); the
session starts over (RFC 3207 §4.2: EHLO again, no AUTH, a new envelope) with ``session.ssl``
holding the certificate and cipher; aiosmtpd's STARTTLS hook is run; a failed handshake is
a ``TLSSetupException``, which closes the connection (``handle_exception`` counts it).
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

from aiosmtpd.smtp import SMTP, TLSSetupException, syntax

from sealmail.domain import smtp_replies as replies

__all__ = ["LoopTlsSMTP"]

# What aiosmtpd put in ``session.ssl`` (asyncio's SSLProtocol ``_extra``).
_TLS_EXTRA: Final = ("sslcontext", "peercert", "cipher", "compression", "ssl_object")


class LoopTlsSMTP(SMTP):
    """aiosmtpd's SMTP upgrading to TLS with ``loop.start_tls``."""

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if arg:
            await self.push("501 Syntax: STARTTLS")
            return
        if not self.tls_context:
            await self.push("454 TLS not available")
            return
        if self._tls_protocol is not None:
            # RFC 3207 §4.2: no STARTTLS once TLS is up (nor offered).  Answered 220, a
            # second handshake inside the first failed and dropped the session.
            await self.push(str(replies.S503_TLS_ALREADY_ACTIVE))
            return
        await self.push("220 Ready to start TLS")
        plain = cast(asyncio.WriteTransport, self.transport)
        # Nothing awaited from here to start_tls's pause: what is buffered now is all the
        # client sent in the clear; what it sends later is fed to the handshake.
        self._reader._buffer.clear()  # type: ignore[attr-defined]  # aiosmtpd clears it too
        # aiosmtpd's ``connection_lost`` closes this one too.
        self._original_transport = plain
        try:
            secure = await self.loop.start_tls(plain, self, self.tls_context, server_side=True)
        except Exception as error:
            raise TLSSetupException() from error
        if secure is None:  # the client closed the connection during the handshake
            raise TLSSetupException() from ConnectionResetError()
        self._secured(secure)

    def _secured(self, secure: asyncio.Transport) -> None:
        """aiosmtpd's ``connection_made`` after its STARTTLS: the new transport, a new session."""
        self._reader._transport = secure  # type: ignore[attr-defined]
        self._writer._transport = secure  # type: ignore[attr-defined]
        self.transport = secure
        self._over_ssl = True
        # aiosmtpd's "TLS is on" (its checks test this for None, the EHLO lines among them).
        self._tls_protocol = secure  # type: ignore[assignment]
        self._set_rset_state()  # type: ignore[no-untyped-call]
        session = self._create_session()
        session.peer = secure.get_extra_info("peername")
        session.ssl = {key: secure.get_extra_info(key) for key in _TLS_EXTRA}
        self.session = session
        self._reset_timeout()
        hook = self._handle_hooks.get("STARTTLS")
        self._tls_handshake_okay = True if hook is None else hook(self, session, self.envelope)
