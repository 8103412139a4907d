"""Reuse the delivery fixtures: loopback DNS, test CA, MX sinks."""

from tests.integration.delivery.conftest import ca, dns, mx

__all__ = ["ca", "dns", "mx"]
