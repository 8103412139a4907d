"""CPU time the benches read: this process's, and the PostgreSQL backends serving one database."""

from __future__ import annotations

import os
import resource
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu() -> float:
    """This process's user + system CPU seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sys_cpu() -> float:
    """This process's system CPU seconds (the kernel's share: socket writes, fsync, epoll)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def pg_cpu(database: str) -> float:
    """CPU seconds of the PostgreSQL backends serving ``database`` (0 if none or unreadable;
    the server must run on this machine)."""
    total = 0.0
    tag = f" {database} ".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if not cmd.startswith(b"postgres:") or tag not in cmd:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total
