"""Tags the system itself puts on a message to steer its delivery.

A tenant's own tags are free text for searching; these few change what SecureLine does
with the message, so they are named once here and never spelled out at a call site.
"""

from __future__ import annotations

import enum


class SystemTag(enum.StrEnum):
    # A portal sign-in code mail: never turned into a portal notice itself (it opens one).
    PORTAL_CODE = "portal-code"
    # A shared file's notice: the file is only reachable through the portal.
    FILE_SHARE = "file-share"
    # A form submitter's copy of what they sent: only through the portal, never plain.
    FORM_COPY = "form-copy"
