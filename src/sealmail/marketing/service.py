"""The marketing feature's use cases, gathered for the adapters (API, CLI, console).

Each part is its own module: ``attributes`` (typed declarations with a PHI class),
``contacts`` and ``imports``, ``lists``, ``consent`` (the ledger and authorizations),
``segments`` (typed rules compiled to bound SQL), ``campaigns`` (definitions, stats),
``campaign_runs`` (the audience expanded in the background; pause, resume, cancel),
``compliance`` (pre-send checks), ``gate`` (``decide_send`` at every claim),
``breaker`` (complaint-rate pause), ``journeys`` and ``analytics`` (per variant and
journey node; conversions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from sealmail.marketing.analytics import Analytics
from sealmail.marketing.attributes import Attributes
from sealmail.marketing.breaker import Alert, Breaker
from sealmail.marketing.campaign_runs import CampaignRuns
from sealmail.marketing.campaigns import Campaigns
from sealmail.marketing.consent import Consent
from sealmail.marketing.contacts import Contacts
from sealmail.marketing.imports import Importer
from sealmail.marketing.journeys import Journeys
from sealmail.marketing.lists import Lists
from sealmail.marketing.segments import Segments
from sealmail.messages.service import Messages
from sealmail.templates.store import TemplateStore
from sealmail.tenancy.keyring import Keyring


@dataclass
class Marketing:
    engine: Engine
    attributes: Attributes
    contacts: Contacts
    importer: Importer
    lists: Lists
    consent: Consent
    segments: Segments
    campaigns: Campaigns
    runs: CampaignRuns
    journeys: Journeys
    breaker: Breaker
    analytics: Analytics


def build(
    engine: Engine,
    keyring: Keyring,
    blind_root: Callable[[], bytes],
    messages: Messages,
    templates: TemplateStore,
    message_id_domain: str,
    alert: Alert | None = None,
) -> Marketing:
    contacts = Contacts(engine, keyring, blind_root)
    segments = Segments(engine, contacts.blind_key)
    campaigns = Campaigns(engine, messages, templates, segments, contacts.secrets, message_id_domain)
    return Marketing(
        engine,
        Attributes(engine),
        contacts,
        Importer(engine, contacts),
        Lists(engine),
        Consent(engine),
        segments,
        campaigns,
        CampaignRuns(engine, campaigns),
        Journeys(engine, campaigns, segments),
        Breaker(engine, alert),
        Analytics(engine),
    )
