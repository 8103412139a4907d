"""File-share integration fixtures: the delivery suite's DNS, CA and MX farm, reused."""

from tests.integration.delivery.conftest import ca, dns, mx  # noqa: F401 — fixtures, re-exported
