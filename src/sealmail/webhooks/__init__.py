"""Webhooks: signed, retried delivery of events to tenants' HTTPS endpoints.

``endpoints`` manages receivers and their secrets, ``outbox`` fans events out into
deliveries and claims them, ``dispatcher`` sends them, ``signing``, ``policy`` and
``payload`` are the pure parts (Standard Webhooks signing, retry decisions, bodies).
"""
