"""The engagement integration stack and the delivery suite's DNS, CA and MX farm, reused."""

from tests.integration.delivery.conftest import ca, dns, mx  # noqa: F401 — fixtures, re-exported
from tests.integration.engagement.conftest import stack  # noqa: F401 — fixture, re-exported
