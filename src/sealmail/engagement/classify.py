"""Was it a person? Heuristics that flag machine opens and suspected bot clicks.

Opens and clicks are never dropped, only labelled: a tenant's reports and journeys decide
what to do with a machine open, and a wrong guess here must not lose a real one.

Signals (any one suffices):

* ``proxy``: the fetch came through a mailbox provider's image proxy.  Gmail
  (``GoogleImageProxy``, "via ggpht.com"), Yahoo/AOL (``YahooMailProxy``) and Apple Mail
  Privacy Protection fetch images for the reader, often ahead of any reading (Apple MPP
  preloads every message; Gmail caches the first fetch), so the open says the message
  arrived, not that someone looked.  Apple's proxy presents a bare ``Mozilla/5.0``
  without platform details, which no real browser sends.
* ``scanner``: a security gateway (Microsoft Defender/Safe Links, Proofpoint, Mimecast,
  Barracuda, Cisco/IronPort, Trend Micro, Sophos, Symantec/Broadcom, FortiGuard, Zscaler)
  or a link-preview bot.  Gateways fetch every link of a message on arrival
  (research/marketing.md, mautic#16263).
* ``automation``: HTTP libraries and crawlers (curl, python-requests, Go-http-client,
  "bot", "spider" …) and an empty user agent.
* ``head``: a HEAD request; browsers and mail clients GET, scanners probe.
* ``fast``: the fetch came within ``FAST_SECONDS`` of delivery, before a person plausibly
  opened the message.

Only the class of the user agent is kept (``user_agent_class``), never the string itself:
it fingerprints a patient's device and adds nothing a report needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

FAST_SECONDS = 5.0

_PROXIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("google_proxy", re.compile(r"GoogleImageProxy|ggpht\.com", re.I)),
    ("yahoo_proxy", re.compile(r"YahooMailProxy|Yahoo! ?Slurp|aolmail", re.I)),
)
# Apple Mail Privacy Protection: exactly "Mozilla/5.0", nothing after it.
_APPLE_MPP = re.compile(r"^Mozilla/5\.0$")
_SCANNERS = re.compile(
    r"Proofpoint|Mimecast|Barracuda|IronPort|Cisco|TrendMicro|Trend Micro|Sophos|Symantec|"
    r"Broadcom|Forti(?:Guard|net)|Zscaler|Safe ?Links|Microsoft Office Protocol Discovery|"
    r"BingPreview|SkypeUriPreview|Microsoft Defender|"
    r"Slackbot|facebookexternalhit|Twitterbot|LinkedInBot|WhatsApp|Discordbot|"
    r"Google-Safety|Google Web Preview|preview",
    re.I,
)
_AUTOMATION = re.compile(
    r"curl/|wget/|python-requests|python-urllib|python-httpx|aiohttp|Go-http-client|"
    r"Java/|okhttp|libwww-perl|HeadlessChrome|PhantomJS|node-fetch|axios/|"
    r"bot\b|spider|crawler|scan",
    re.I,
)
# Outlook for Windows fetches images as "compatible; ms-office; MSOffice 16": a reader.
_MAIL_CLIENTS = re.compile(r"Thunderbird|Outlook|ms-office|MSOffice|AppleMail|Mail/\d", re.I)
_BROWSER = re.compile(r"Mozilla/5\.0 \(")


@dataclass(frozen=True, slots=True)
class Verdict:
    machine: bool
    user_agent_class: str
    signals: tuple[str, ...]


def user_agent_class(user_agent: str | None) -> str:
    """A coarse, PHI-free class of a user agent string."""
    ua = (user_agent or "").strip()
    if not ua:
        return "none"
    for name, pattern in _PROXIES:
        if pattern.search(ua):
            return name
    if _APPLE_MPP.match(ua):
        return "apple_mpp"
    if _SCANNERS.search(ua):
        return "security_scanner"
    if _AUTOMATION.search(ua):
        return "automation"
    if _MAIL_CLIENTS.search(ua):
        return "mail_client"
    if _BROWSER.match(ua):
        return "browser"
    return "other"


_CLASS_SIGNAL = {
    "google_proxy": "proxy",
    "yahoo_proxy": "proxy",
    "apple_mpp": "proxy",
    "security_scanner": "scanner",
    "automation": "automation",
    "none": "automation",
}


def classify(*, user_agent: str | None, method: str, at: datetime, delivered_at: datetime | None) -> Verdict:
    """The verdict on one pixel fetch or link click (pure; see the module docstring)."""
    cls = user_agent_class(user_agent)
    signals: list[str] = []
    if cls in _CLASS_SIGNAL:
        signals.append(_CLASS_SIGNAL[cls])
    if method.upper() == "HEAD":
        signals.append("head")
    if delivered_at is not None and (at - delivered_at).total_seconds() < FAST_SECONDS:
        signals.append("fast")
    return Verdict(bool(signals), cls, tuple(signals))
