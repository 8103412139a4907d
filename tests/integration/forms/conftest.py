"""Forms integration fixtures: the delivery suite's DNS, CA and MX farm (for the portal stack)."""

from tests.integration.delivery.conftest import ca, dns, mx  # noqa: F401 — fixtures, re-exported
