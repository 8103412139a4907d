"""An import's text reader: a line no valid row could have is refused as it is read."""

import io

import pytest

from sealmail.errors import ValidationFailed
from sealmail.marketing.imports import MAX_LINE, text_lines


def test_a_line_longer_than_any_valid_row_is_refused_before_the_rest_is_read() -> None:
    spool = io.BytesIO(b"email,city\nh@example.net," + b"x" * (8 * MAX_LINE))
    lines = text_lines(spool)
    assert next(lines) == "email,city\n"
    with pytest.raises(ValidationFailed, match="longer than"):
        next(lines)
    # Refused within a block of the limit, not after holding (and re-splitting) the whole line.
    assert spool.tell() < 2 * MAX_LINE


def test_long_quoted_cells_that_fit_the_limits_read_back_whole() -> None:
    row = ",".join(['"' + '""' * 1999 + '"'] * 3)
    spool = io.BytesIO(("\ufeffemail,a,b,c\nq@example.net," + row + "\n").encode())
    assert list(text_lines(spool)) == ["email,a,b,c\n", "q@example.net," + row + "\n"]
