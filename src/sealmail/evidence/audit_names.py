"""Audit names of the evidence feature (``object:verb``)."""

from __future__ import annotations

import enum


class EvidenceAudit(enum.StrEnum):
    KEY_CREATED = "evidence_key:created"
    PROOF_ISSUED = "proof:issued"
    AUDIT_ANCHORED = "audit:anchored"
    REPORT_EXPORTED = "report:exported"
