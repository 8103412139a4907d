"""Secure marketing (issue 16): contacts, consent by purpose, segments, campaigns and journeys."""
