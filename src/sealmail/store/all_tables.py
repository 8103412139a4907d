"""Every table module, imported for its side effect on the shared ``metadata``.

Alembic's autogenerate and the test fixtures import this, so a feature's tables (kept in
their own module next to the feature) are always part of the schema.
"""

from sealmail.store import (
    tables,
    tables_bounces,
    tables_engagement,
    tables_files,
    tables_portal,
    tables_ratelimit,
    tables_suppressions,
    tables_templates,
    tables_webhooks,
)
from sealmail.store.tables import metadata

__all__ = [
    "metadata",
    "tables",
    "tables_bounces",
    "tables_engagement",
    "tables_files",
    "tables_portal",
    "tables_ratelimit",
    "tables_suppressions",
    "tables_templates",
    "tables_webhooks",
]
