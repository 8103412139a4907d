"""The states a bulk job is stored in (``bulk_jobs.status``).

One enum, so a state is spelled once; the values are the stored strings and the API's, so
stored rows and clients are unchanged.
"""

from __future__ import annotations

import enum


class BulkStatus(enum.StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"  # the system could not go on; what was committed before stays
