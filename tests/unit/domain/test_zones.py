import pytest

from sealmail.domain.zones import zone


def test_a_named_zone_is_found() -> None:
    assert zone("America/New_York").key == "America/New_York"


@pytest.mark.parametrize(
    "name",
    ["", "Mars/Olympus", "../../etc/passwd", "\u202eUTC", "A" * 65, "UTC\x00", "localtime", "posixrules"],
)
def test_anything_else_is_a_value_error_naming_the_expected_form(name: str) -> None:
    with pytest.raises(ValueError, match="IANA time zone database"):
        zone(name)
