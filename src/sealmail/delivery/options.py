"""The delivery worker's settings and its name in leases."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sealmail.domain.tls_policy import Stream, TlsPolicy

__all__ = ["WorkerOptions", "worker_name"]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(object()) & 0xFFFF:04x}"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """The worker's settings, as the composition root read them (same names as ``Settings``)."""

    worker_concurrency: int
    worker_batch_size: int
    worker_poll_seconds: float
    lease_seconds: int
    retry_first_seconds: int
    retry_cap_seconds: int
    retry_max_age_seconds: int
    circuit_breaker_failures: int
    circuit_breaker_seconds: int
    destination_rate_per_second: float
    on_tls_unavailable: str  # "defer" or "fail"
    # Each stream's default TLS level (``tls_policy_transactional`` …).
    stream_defaults: tuple[tuple[Stream, TlsPolicy], ...]

    def stream_default(self, stream: Stream) -> TlsPolicy:
        for known, level in self.stream_defaults:
            if known is stream:
                return level
        raise KeyError(stream)
