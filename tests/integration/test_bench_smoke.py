"""The benchmarks still run: a reshape that renames a service method must not leave ``bench/``
quietly broken (issue 18's figures come from these scripts).  Tiny sizes — a smoke run, not a
measurement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("door", ["store", "smtp"])
def test_intake_cpu_bench_runs(door: str) -> None:
    out = _run("bench/intake_cpu.py", "--messages", "20", "--warmup", "2", "--threads", "2", "--door", door)
    assert "threads=2 messages=20: CPU" in out


def test_secureline_cost_bench_runs() -> None:
    assert _run("bench/secureline_cost.py", "--n", "5").strip()


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_every_bench_imports(script: str) -> None:
    """``--help`` imports the script and everything it names from ``sealmail``."""
    _run(f"bench/{script}", "--help")
