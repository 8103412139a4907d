"""Sealmail: HIPAA-grade secure email for healthcare organizations."""

__version__ = "0.1.0"
