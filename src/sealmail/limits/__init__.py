"""Limits: see docs/layout.md."""
