"""How the worker gets its return-path signer (see ``delivery/personalize.py``) and the
gateway its report intake."""

from __future__ import annotations

from sealmail.app import Services
from sealmail.bounces.inbound import ReportIntake
from sealmail.bounces.return_path import KEY_PURPOSE, ReturnPathSigner
from sealmail.config import Settings
from sealmail.messages.personalize import ReturnPaths


def build_signer(services: Services, settings: Settings) -> ReturnPathSigner:
    return ReturnPathSigner(settings, lambda: services.site_secrets.key(KEY_PURPOSE))


def build_return_paths(services: Services, settings: Settings) -> ReturnPaths | None:
    # Without a listener for them (here or, with an explicit domain, elsewhere) rewritten
    # return paths would send every asynchronous bounce into the void; the sender's own
    # address keeps receiving them until bounce intake is set up.
    if not settings.verp_enabled or (settings.smtp_inbound_port is None and not settings.return_path_domain):
        return None
    return build_signer(services, settings)


def build_report_intake(services: Services) -> ReportIntake:
    return ReportIntake(services.engine, build_signer(services, services.settings))
