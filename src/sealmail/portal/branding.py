"""Tenant branding from tenant settings ``{"branding": {"logo_url", "primary_color"}}``.

Values are validated before they reach a page: a colour must be ``#rrggbb`` and is
darkened until white text on it meets WCAG 2.1 AA contrast (4.5:1), so a pale brand
colour cannot make buttons unreadable; a logo must be an https URL (it is the only
remote origin the page CSP allows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sealmail.domain.display_text import safe_display

DEFAULT_COLOR = "#0b5cad"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True, slots=True)
class Branding:
    organization: str
    color: str
    logo_url: str | None

    @property
    def logo_origin(self) -> str:
        if not self.logo_url:
            return ""
        parts = urlsplit(self.logo_url)
        return f"{parts.scheme}://{parts.netloc}"


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else float(((s + 0.055) / 1.055) ** 2.4)

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_with_white(color: str) -> float:
    rgb = (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))
    return 1.05 / (_luminance(rgb) + 0.05)


def accessible(color: str) -> str:
    """The colour, darkened in 5 % steps until white text on it reaches 4.5:1."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    current = color.lower()
    while contrast_with_white(current) < 4.5:
        rgb = [int(c * 0.95) for c in rgb]
        current = "#" + "".join(f"{c:02x}" for c in rgb)
    return current


def branding(name: str, settings: dict[str, Any]) -> Branding:
    raw = settings.get("branding")
    raw = raw if isinstance(raw, dict) else {}
    color = str(raw.get("primary_color") or "")
    logo = str(raw.get("logo_url") or "")
    parts = urlsplit(logo) if logo else None
    safe_logo = logo if parts and parts.scheme == "https" and parts.netloc and '"' not in logo else None
    return Branding(
        # Shown on every page and in titles: no control or bidi override (issue 11 §6).
        organization=safe_display(name, 120) or "Secure messages",
        color=accessible(color) if _HEX.match(color) else DEFAULT_COLOR,
        logo_url=safe_logo,
    )
