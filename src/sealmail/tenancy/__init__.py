"""Tenancy: see docs/layout.md."""
