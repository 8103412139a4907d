"""The SMTP submission gateway (RFC 6409): ``SmtpGateway`` and what it is built from."""

from sealmail.intake.smtp.gateway import SmtpGateway
from sealmail.intake.smtp.options import GatewayEvent, GatewayOptions, GatewayServices
from sealmail.smtpd.server import server_tls_context

__all__ = ["GatewayEvent", "GatewayOptions", "GatewayServices", "SmtpGateway", "server_tls_context"]
