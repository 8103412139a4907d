"""Bounce and complaint handling: signed (VERP) return paths, inbound DSN and ARF reports."""
