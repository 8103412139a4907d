"""The secure portal: the recipient-facing web app behind a portal notice's link."""

from sealmail.portal.web import PortalOptions, create_portal, create_portal_site

__all__ = ["PortalOptions", "create_portal", "create_portal_site"]
