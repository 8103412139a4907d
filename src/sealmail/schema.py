"""Every table module, imported for its side effect on the shared ``metadata``.

Alembic's autogenerate and the test fixtures import this, so a feature's tables (kept in
their own module next to the feature) are always part of the schema.
"""

from sealmail.bounces import tables as tables_bounces
from sealmail.engagement import tables as tables_engagement
from sealmail.evidence import tables as tables_evidence
from sealmail.files import tables as tables_files
from sealmail.forms import tables as tables_forms
from sealmail.limits import tables as tables_ratelimit
from sealmail.marketing import tables as tables_marketing
from sealmail.portal import tables as tables_portal
from sealmail.sms import tables as tables_sms
from sealmail.store import tables
from sealmail.store.tables import metadata
from sealmail.suppressions import tables as tables_suppressions
from sealmail.templates import tables as tables_templates
from sealmail.tenancy import tables as tables_tenancy
from sealmail.tlsrpt import tables as tables_tlsrpt
from sealmail.users import tables as tables_users
from sealmail.webhooks import tables as tables_webhooks

__all__ = [
    "metadata",
    "tables",
    "tables_bounces",
    "tables_engagement",
    "tables_evidence",
    "tables_files",
    "tables_forms",
    "tables_marketing",
    "tables_portal",
    "tables_ratelimit",
    "tables_sms",
    "tables_suppressions",
    "tables_templates",
    "tables_tenancy",
    "tables_tlsrpt",
    "tables_users",
    "tables_webhooks",
]
