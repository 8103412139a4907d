"""What a form is: its fields, who receives its submissions, and its abuse limits.

One pydantic model is both the API's body and what a stored version is read back into,
so the rules a definition must meet are written once.  Every bound here exists because
the public page renders the definition and the submit path enforces it: a form cannot be
saved that the public page could not render safely (field names become HTML names and
CSS selectors, embed origins become a CSP directive).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sealmail.domain.addresses import InvalidAddress, header_text_problem, parse_address
from sealmail.domain.marketing import Purpose
from sealmail.forms.filetypes import FileKind

FieldType = Literal[
    "text",
    "textarea",
    "email",
    "tel",
    "number",
    "date",
    "select",
    "radio",
    "checkbox",
    "file",
    "signature",
    "consent",
]
# Types whose value a condition may test (a fixed set of values the page can select on).
CHOICE_TYPES = frozenset({"select", "radio", "checkbox"})
NAME = r"^[a-z][a-z0-9_]{0,39}$"
# An embed origin lands verbatim in ``frame-ancestors``: scheme, host and port only.
ORIGIN = re.compile(
    r"^https://[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?$"
)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
Text = Annotated[str, Field(max_length=200)]


class ShowIf(BaseModel):
    """Show (and validate) the field only when an earlier choice field has this value."""

    model_config = ConfigDict(extra="forbid")
    field: str = Field(pattern=NAME)
    equals: str = Field(min_length=1, max_length=200)


class FieldDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="The field's key in the submission (a-z, 0-9, _).")
    label: str = Field(min_length=1, max_length=200)
    type: FieldType
    required: bool = False
    help: str = Field("", max_length=500)
    max_length: int = Field(1000, ge=1, le=10000, description="Characters, for text fields.")
    min: float | None = Field(None, description="Smallest number allowed (number fields).")
    max: float | None = Field(None, description="Largest number allowed (number fields).")
    options: list[Text] = Field(default_factory=list, max_length=50, description="select / radio choices.")
    accept: list[FileKind] = Field(
        default_factory=lambda: list(FileKind),
        description="File kinds a file field takes (checked by content).",
    )
    max_bytes: int = Field(5 * 1024 * 1024, ge=1, le=MAX_UPLOAD_BYTES, description="Per file field.")
    text: str = Field("", max_length=5000, description="The statement a consent checkbox agrees to.")
    purpose: Purpose | None = Field(
        None,
        description="Consent fields: the purpose a ticked box grants in the marketing consent ledger "
        "(by the submitter's email, the form's first email field).",
    )
    show_if: ShowIf | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.type in ("select", "radio") and not self.options:
            raise ValueError(f"field {self.name}: a {self.type} field needs options")
        if self.type == "consent" and not self.text:
            raise ValueError(f"field {self.name}: a consent field needs the text agreed to")
        if self.purpose is not None and self.type != "consent":
            raise ValueError(f"field {self.name}: only a consent field declares a purpose")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"field {self.name}: options repeat")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"field {self.name}: min is above max")
        return self

    def choices(self) -> list[str]:
        """The values a condition on this field may test."""
        return ["yes"] if self.type == "checkbox" else list(self.options)


class FormDefinition(BaseModel):
    """One version of a form, as the API takes it and the store keeps it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    title: str = Field(
        min_length=1, max_length=200, description="Shown on the page and in the delivered mail."
    )
    intro: str = Field("", max_length=5000)
    fields: list[FieldDef] = Field(min_length=1, max_length=100)
    recipients: list[str] = Field(
        min_length=1, max_length=20, description="Who receives each submission, as a secure message."
    )
    sender: str = Field(description="The From address of delivered submissions (a verified domain).")
    embed_origins: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="https origins allowed to frame the hosted form (CSP frame-ancestors).",
    )
    min_fill_seconds: int = Field(3, ge=0, le=600, description="A submission faster than this is refused.")
    token_ttl_seconds: int = Field(7200, ge=60, le=86400, description="How long a served page can be posted.")
    max_total_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=2 * MAX_UPLOAD_BYTES)
    per_address_per_hour: int = Field(20, ge=1, le=10000, description="Submissions per client address.")
    receipt_message: str = Field("Thank you. We received your form.", max_length=2000)
    submitter_copy: bool = Field(
        False,
        description="Send the submitter a copy of their answers (text and PDF) as a secure portal "
        "message to the form's first email field: never as plain mail, and readable only after "
        "signing in as that address.",
    )

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        # The title is in the Subject of every delivered submission and copy: a line
        # break in it would make the builder refuse each delivery, long after this 201.
        problem = header_text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        for i, value in enumerate(values):
            try:
                parse_address(value, f"recipients[{i}]")
            except InvalidAddress as exc:
                raise ValueError(str(exc)) from None
        return values

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        try:
            parse_address(value, "sender")
        except InvalidAddress as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("embed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            origin = value.strip().lower().rstrip("/")
            if not ORIGIN.match(origin):
                raise ValueError(f"{value!r} is not an https origin (https://host[:port])")
            out.append(origin)
        return out

    @model_validator(mode="after")
    def _conditions(self) -> Self:
        seen: dict[str, FieldDef] = {}
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"field name {f.name} repeats")
            if f.show_if is not None:
                target = seen.get(f.show_if.field)
                if target is None or target.type not in CHOICE_TYPES:
                    raise ValueError(
                        f"field {f.name}: show_if must name an earlier select, radio or checkbox"
                    )
                if f.show_if.equals not in target.choices():
                    raise ValueError(f"field {f.name}: show_if.equals is not a value of {target.name}")
            seen[f.name] = f
        if self.submitter_copy and not any(f.type == "email" for f in self.fields):
            raise ValueError("submitter_copy needs an email field: the copy goes to its address")
        return self

    def field(self, name: str) -> FieldDef | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def sender_domain(self) -> str:
        return parse_address(self.sender, "sender").ascii_domain
