"""The SMTP submission gateway: a thin adapter from SMTP (RFC 5321, RFC 6409) to ``Messages``.

Who may submit:

* a client that ran STARTTLS and then AUTH PLAIN or LOGIN with an SMTP credential
  (``Tenancy.authenticate_smtp``); its stream is the credential's stream;
* an outbound connector (Microsoft 365, Google Workspace) recognised by its peer address
  (``smtp_connector_networks``) or by a TLS client certificate chaining to
  ``smtp_connector_client_ca``; its mail is accepted for ``smtp_connector_tenant`` on the
  transactional stream.

The access rules are in ``protocol.py``, the transaction in ``handler.py``.  The inbound
listener for bounces and complaints is the bounces feature's (``bounces/listener.py``).
"""

from __future__ import annotations

import ssl

from sealmail.intake.smtp.handler import SubmissionHandler
from sealmail.intake.smtp.options import GatewayOptions, GatewayServices
from sealmail.intake.smtp.protocol import SubmissionSMTP
from sealmail.smtpd.server import SmtpListener


class SmtpGateway(SmtpListener):
    """The SMTP submission listener; ``start`` and ``stop`` run it in its own thread."""

    name = "submission"
    protocol = SubmissionSMTP
    auth_required = True

    def __init__(self, options: GatewayOptions, services: GatewayServices, tls: ssl.SSLContext) -> None:
        super().__init__(SubmissionHandler(options, services), options.listen, tls)
        self.options = options
