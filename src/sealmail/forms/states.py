"""The states a form and a submission are stored in (``forms.status``, ``form_submissions.status``).

One enum each, so a state is spelled once: the service, the console and retention compare
against these, never against bare strings.  The values are the stored strings and the API's,
so stored rows and clients are unchanged.
"""

from __future__ import annotations

import enum


class FormStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"  # its hosted page is gone; submissions stay


class SubmissionStatus(enum.StrEnum):
    RECEIVED = "received"  # sealed and stored; not yet sent on as a secure message
    DELIVERED = "delivered"  # sent on (``message_id`` names the message)
    HELD = "held"  # could not be sent on (``status_reason`` says why); kept sealed


# Settled submissions: nothing more happens to them (a received one may still be delivered
# from its sealed record), so retention may purge them.
SETTLED: tuple[SubmissionStatus, ...] = (SubmissionStatus.DELIVERED, SubmissionStatus.HELD)
