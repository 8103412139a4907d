"""How the worker gets its link instrumenter (see ``delivery/personalize.py``)."""

from __future__ import annotations

from sealmail.app import Services
from sealmail.config import Settings
from sealmail.engagement.instrumenter import LinkInstrumenter
from sealmail.engagement.service import Engagement
from sealmail.messages.personalize import Instrumenter

LINKS_KEY = "links"


def build_engagement(services: Services, settings: Settings) -> Engagement:
    return Engagement(
        services.engine,
        services.keyring,
        lambda: services.site_secrets.key(LINKS_KEY),
        settings.resolved_portal_url,
    )


def build_instrumenter(services: Services, settings: Settings) -> Instrumenter | None:
    # Always on: the instrumenter applies only to broadcast messages (unsubscribe headers)
    # and to tenants that opted in to tracking (engagement/policy.py).
    return LinkInstrumenter(build_engagement(services, settings))
