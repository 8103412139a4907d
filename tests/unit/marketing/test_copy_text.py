"""COPY text written by hand (``marketing.copy_text``): what PostgreSQL's text format would
read back must be exactly the value given."""

import json
import re

import pytest

from sealmail.marketing import copy_text


def unescape(field: str) -> str | None:
    """PostgreSQL's COPY text reading of one field (the escapes ``copy_text`` writes)."""
    if field == "\\N":
        return None
    table = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: table[m.group(1)], field)


@pytest.mark.parametrize(
    "value", ["plain", "tab\there", "two\nlines\r\n", "\\N", "C:\\path\\x00", "Zürich ☃ \u2028", ""]
)
def test_a_field_reads_back_as_given_and_never_splits_a_row(value: str) -> None:
    written = copy_text.field(value)
    assert "\t" not in written and "\n" not in written and "\r" not in written
    assert unescape(written) == value


def test_none_is_null_and_bytes_are_hex() -> None:
    assert copy_text.field(None) == "\\N" and unescape(copy_text.bytea(None)) is None
    assert unescape(copy_text.bytea(b"\x00\xff")) == "\\x00ff"


def test_attribute_json_is_what_json_dumps_writes_and_reads_back_after_copy() -> None:
    values = {"city": 'Ann "A"\tB\\C\n☃', "age": 52, "score": 1.5e16, "smoker": False, "tiny": -0.25}
    written = copy_text.json_object(values)
    assert "\t" not in written and "\n" not in written
    assert json.loads(unescape(written) or "") == values
    assert copy_text.json_object({}) == "{}"


def test_a_value_that_is_not_a_coerced_type_is_refused() -> None:
    with pytest.raises(TypeError):
        copy_text.json_object({"when": object()})
