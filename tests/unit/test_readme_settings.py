"""The README's settings table is generated from the settings model and kept in sync."""

from __future__ import annotations

from pathlib import Path

from sealmail.cli import settings_table
from sealmail.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_documents_every_setting_with_its_default() -> None:
    text = README.read_text()
    assert settings_table() in text, "README settings table is stale: run `sealmail config docs`"
    for name in Settings.model_fields:
        assert f"`SEALMAIL_{name.upper()}`" in text


def test_every_setting_has_a_description() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert missing == []
