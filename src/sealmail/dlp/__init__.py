"""DLP: detect PHI in a message and map it to the tenant's action.

``detectors`` holds the pure PHI detectors, ``prefilter`` the byte shapes that tell them where
a match can start, ``rules`` the tenant policy and the scan that produces a :class:`Verdict`,
``extract`` the MIME/PDF/DOCX text extraction.  Verdicts name the
detector and the location that fired, never the matched value.
"""

from __future__ import annotations

from email.message import Message

from sealmail.dlp.detectors import BUILTIN_NAMES, Detector, Span, TenantPatternError
from sealmail.dlp.extract import ExtractLimits, ExtractResult, extract
from sealmail.dlp.rules import (
    Action,
    DlpPolicy,
    DlpPolicyError,
    Finding,
    TextPart,
    Verdict,
    public_location,
    scan,
)


def scan_message(
    raw: bytes, policy: DlpPolicy, limits: ExtractLimits | None = None, head: Message | None = None
) -> Verdict:
    """Extract the text of an RFC 5322 message and scan it under ``policy`` (``head``: see
    ``extract``)."""
    result = extract(raw, limits, head)
    return scan(result.parts, policy, unscanned=result.unscanned)


__all__ = [
    "BUILTIN_NAMES",
    "Action",
    "Detector",
    "DlpPolicy",
    "DlpPolicyError",
    "ExtractLimits",
    "ExtractResult",
    "Finding",
    "Span",
    "TenantPatternError",
    "TextPart",
    "Verdict",
    "extract",
    "public_location",
    "scan",
    "scan_message",
]
