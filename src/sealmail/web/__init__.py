"""Web: see docs/layout.md."""
