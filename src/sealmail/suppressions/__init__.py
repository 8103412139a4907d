"""Suppressions: see docs/layout.md."""
