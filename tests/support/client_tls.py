"""One default TLS context for the suites' HTTP clients.

httpx builds a fresh ``SSLContext`` for every ``Client`` and reads the whole CA bundle into it
(40-180 ms of CPU each); the harnesses open a few clients per test, so they share this one.
A context holds no per-connection state, so sharing it changes nothing a test can observe.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def default_context() -> ssl.SSLContext:
    """What httpx would build for ``verify=True``, built once per process."""
    return httpx.create_ssl_context()
