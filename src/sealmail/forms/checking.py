"""Checking one submission against its form version: pure, facts in and a verdict out.

A field hidden by its condition is neither required nor kept (a value posted for it is
dropped), so what is delivered is exactly what the submitter could see.  The signature
records the typed name with the server's time and the client address; the consent
field records the exact statement agreed to, so the evidence survives later edits of
the form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.display_text import safe_download_name
from sealmail.forms.definition import FieldDef, FormDefinition
from sealmail.forms.filetypes import EXTENSIONS, MEDIA_TYPES, sniff

TEL = re.compile(r"^\+?[0-9 ().-]{3,30}$")
YES = frozenset({"yes", "on", "true", "1"})


@dataclass(frozen=True, slots=True)
class Upload:
    """One file as posted: the name the browser gave and the bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class CheckedFile:
    field: str
    filename: str
    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Checked:
    answers: dict[str, Any]
    files: tuple[CheckedFile, ...]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class Signer:
    """What the server knows about the signing moment."""

    at: datetime
    address: str


def visible(definition: FormDefinition, values: Mapping[str, Sequence[str]]) -> set[str]:
    """The names of the fields the submitter could see, given the choices posted."""
    shown: set[str] = set()
    for f in definition.fields:
        cond = f.show_if
        if cond is None:
            shown.add(f.name)
            continue
        target = definition.field(cond.field)
        if target is None or target.name not in shown:
            continue
        posted = [v.strip() for v in values.get(target.name, ())]
        if target.type == "checkbox":
            posted = ["yes" for v in posted if v.lower() in YES]
        if cond.equals in posted:
            shown.add(f.name)
    return shown


def check(
    definition: FormDefinition,
    values: Mapping[str, Sequence[str]],
    uploads: Mapping[str, Sequence[Upload]],
    signer: Signer,
) -> Checked:
    answers: dict[str, Any] = {}
    files: list[CheckedFile] = []
    errors: dict[str, str] = {}
    shown = visible(definition, values)
    for f in definition.fields:
        if f.name not in shown:
            continue
        if f.type == "file":
            got, why = _file(f, uploads.get(f.name, ()))
            if why:
                errors[f.name] = why
            elif got is not None:
                files.append(got)
                answers[f.name] = {
                    "filename": got.filename,
                    "media_type": got.media_type,
                    "size": len(got.data),
                }
            continue
        raw = [v for v in values.get(f.name, ()) if v.strip()]
        value, why = _value(f, raw, signer)
        if why:
            errors[f.name] = why
        elif value is not None:
            answers[f.name] = value
    return Checked(answers, tuple(files), errors)


def _value(f: FieldDef, raw: list[str], signer: Signer) -> tuple[Any, str]:
    if not raw:
        return None, "This field is required." if f.required else ""
    if len(raw) > 1:
        return None, "Give one value."
    text = raw[0].strip()
    if len(text) > f.max_length:
        return None, f"Use at most {f.max_length} characters."
    if f.type in ("select", "radio"):
        return (text, "") if text in f.options else (None, "Choose one of the options.")
    if f.type in ("checkbox", "consent"):
        if text.lower() not in YES:
            return None, "This box must be ticked." if f.required else ""
        if f.type == "consent":
            return {"agreed": True, "statement": f.text, "at": signer.at.isoformat()}, ""
        return True, ""
    if f.type == "signature":
        if not any(ch.isalpha() for ch in text):
            return None, "Type your full name to sign."
        return {"typed_name": text, "signed_at": signer.at.isoformat(), "ip": signer.address}, ""
    return _scalar(f, text)


def _scalar(f: FieldDef, text: str) -> tuple[Any, str]:
    if f.type == "email":
        try:
            return parse_address(text, f.name).addr_spec, ""
        except InvalidAddress:
            return None, "Enter an email address like name@example.com."
    if f.type == "tel":
        return (text, "") if TEL.match(text) else (None, "Enter a phone number.")
    if f.type == "number":
        try:
            number = float(text)
        except ValueError:
            return None, "Enter a number."
        if not math.isfinite(number):
            return None, "Enter a number."
        if f.min is not None and number < f.min:
            return None, f"Enter {f.min:g} or more."
        if f.max is not None and number > f.max:
            return None, f"Enter {f.max:g} or less."
        return (int(number) if number.is_integer() else number), ""
    if f.type == "date":
        try:
            return date.fromisoformat(text).isoformat(), ""
        except ValueError:
            return None, "Enter a date as YYYY-MM-DD."
    # text, textarea: control characters other than line breaks and tabs are dropped.
    return "".join(ch for ch in text if ch.isprintable() or ch in "\n\t"), ""


def _file(f: FieldDef, posted: Sequence[Upload]) -> tuple[CheckedFile | None, str]:
    posted = [u for u in posted if u.data or u.filename]
    if not posted:
        return None, "Attach a file." if f.required else ""
    if len(posted) > 1:
        return None, "Attach one file."
    upload = posted[0]
    if not upload.data:
        return None, "The file is empty."
    if len(upload.data) > f.max_bytes:
        return None, f"The file is larger than {f.max_bytes // 1024} KiB."
    kind = sniff(upload.data)
    if kind is None or kind not in f.accept:
        allowed = ", ".join(k.upper() for k in f.accept)
        return None, f"This file type is not accepted here (allowed: {allowed})."
    name = safe_download_name(upload.filename, f.name + EXTENSIONS[kind])
    if not name.lower().endswith(EXTENSIONS[kind]):
        # Delivered under the type its content proves, never as what the name claims.
        name = f"{name.rsplit('.', 1)[0]}{EXTENSIONS[kind]}"
    return CheckedFile(f.name, name, MEDIA_TYPES[kind], upload.data), ""
