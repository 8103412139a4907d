"""Audit names of the templates feature (``object:verb``, like ``audit.AuditAction``)."""

from __future__ import annotations

import enum


class TemplateAudit(enum.StrEnum):
    TEMPLATE_CREATED = "template:created"
    TEMPLATE_VERSION_CREATED = "template:version_created"
    TEMPLATE_DELETED = "template:deleted"
    BULK_STARTED = "bulk_job:started"
    BULK_FINISHED = "bulk_job:finished"
