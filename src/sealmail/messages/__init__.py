"""Messages: see docs/layout.md."""
