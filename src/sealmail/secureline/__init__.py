"""Secureline: see docs/layout.md."""
