"""Knobs of the portal pages; the composition root builds them from settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from sealmail.portal.access import PortalPolicy


@dataclass(frozen=True, slots=True)
class PortalOptions:
    secure_cookies: bool = True
    policy: PortalPolicy = field(default_factory=PortalPolicy)
    max_reply_bytes: int = 25 * 1024 * 1024
