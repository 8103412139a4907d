"""The HIPAA section → tests table: generated from the markers, shipped current, complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealmail.cli import app as sealmail_cli
from sealmail.evidence import controls

TESTS = Path(__file__).resolve().parents[1]
SHIPPED = Path(controls.__file__).with_name(controls.TABLE_FILE)
REGENERATE = f"sealmail evidence controls --tests tests --out {SHIPPED.relative_to(TESTS.parent)}"
runner = CliRunner()


@pytest.mark.hipaa("164.316(b)(2)")
def test_the_shipped_table_matches_the_markers() -> None:
    assert controls.render(controls.scan(TESTS)) == SHIPPED.read_text(encoding="utf-8"), (
        f"the HIPAA control table is stale: run `{REGENERATE}`"
    )
    assert controls.packaged() == SHIPPED.read_text(encoding="utf-8")


def test_every_claimed_section_has_a_test() -> None:
    assert controls.unproven(controls.scan(TESTS)) == []


def test_module_and_function_marks_are_read_and_bad_ones_refused(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(
        "import pytest\n"
        'pytestmark = pytest.mark.hipaa("164.312(b)")\n'
        "def test_one(): pass\n"
        '@pytest.mark.hipaa("164.530(j)")\n'
        "def test_two(): pass\n"
        "def helper(): pass\n"
    )
    table = controls.scan(tests)
    assert table == {
        "164.312(b)": ["tests/test_a.py::test_one", "tests/test_a.py::test_two"],
        "164.530(j)": ["tests/test_a.py::test_two"],
    }
    assert "164.524(c)(2)" in controls.unproven(table)
    (tests / "test_b.py").write_text(
        'import pytest\nS = "164.312(b)"\n@pytest.mark.hipaa(S)\ndef test_x(): pass\n'
    )
    with pytest.raises(controls.MarkerError):
        controls.scan(tests)


def test_cli_prints_the_table_and_fails_on_an_unproven_section(tmp_path: Path) -> None:
    shipped = runner.invoke(sealmail_cli, ["evidence", "controls"])
    assert shipped.exit_code == 0 and "| 164.312(b) |" in shipped.output
    full = runner.invoke(sealmail_cli, ["evidence", "controls", "--tests", str(TESTS)])
    assert full.exit_code == 0, full.output
    partial = tmp_path / "tests"
    partial.mkdir()
    (partial / "test_a.py").write_text(
        'import pytest\n@pytest.mark.hipaa("164.312(b)")\ndef test_a(): pass\n'
    )
    short = runner.invoke(sealmail_cli, ["evidence", "controls", "--tests", str(partial)])
    assert short.exit_code == 1 and "no test proves" in short.output and "164.530(j)" in short.output
    (partial / "test_b.py").write_text("import pytest\n@pytest.mark.hipaa('nonsense')\ndef test_b(): pass\n")
    bad = runner.invoke(sealmail_cli, ["evidence", "controls", "--tests", str(partial)])
    assert bad.exit_code == 2
    missing = runner.invoke(sealmail_cli, ["evidence", "controls", "--tests", str(tmp_path / "none")])
    assert missing.exit_code == 2
