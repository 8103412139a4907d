"""Response bodies of ``/v1/forms`` (the request body is ``definition.FormDefinition`` itself)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sealmail.forms.definition import FormDefinition
from sealmail.forms.states import FormStatus, SubmissionStatus


class FormOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    status: FormStatus = Field(description="An archived form's page is gone.")
    current_version: int
    version: int = Field(description="The version shown in `definition`.")
    url: str = Field(description="The hosted form (link it, or frame it from an `embed_origins` site).")
    created_at: str
    updated_at: str
    definition: FormDefinition


class FormPageOut(BaseModel):
    data: list[FormOut]
    next_cursor: str | None


class SubmissionSummaryOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    form_id: str
    version: int
    received_at: str
    size: int
    file_count: int
    digest: str = Field(description="SHA-256 of the JSON record; the submitter's receipt shows it too.")
    status: SubmissionStatus = Field(description="held: it could not be sent on (`status_reason` says why).")
    status_reason: str | None
    message_id: str | None = Field(description="The secure message that delivered it.")


class SubmissionPageOut(BaseModel):
    data: list[SubmissionSummaryOut]
    next_cursor: str | None


class SubmissionOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    status: SubmissionStatus
    message_id: str | None
    digest: str
    document: dict[str, Any] = Field(description="The `sealmail.form-submission/1` record.")
    files: list[dict[str, Any]]
