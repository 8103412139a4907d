"""The benchmarks still run: a reshape that renames a service method must not leave ``bench/``
quietly broken (issue 18's figures come from these scripts).  Tiny sizes — a smoke run, not a
measurement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("door", ["store", "smtp", "api"])
def test_intake_cpu_bench_runs(door: str) -> None:
    out = _run("bench/intake_cpu.py", "--messages", "20", "--warmup", "2", "--threads", "2", "--door", door)
    assert "threads=2 messages=20: CPU" in out


def test_secureline_cost_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "secureline.md"
    table = _run("bench/secureline_cost.py", "--n", "5", "--out", str(out)).strip()
    assert table and out.read_text().endswith(table + "\n")  # not the recorded results file


def test_outbound_cpu_bench_runs() -> None:
    out = _run(
        "bench/outbound_cpu.py", "--messages", "20", "--concurrency", "2", "--repeats", "1", "--pipelining"
    )
    assert "20 × 5 KB, 2 lanes, PIPELINING on" in out
    assert "sign + deliver" in out


SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py"))

# Runs each script as ``__main__`` with ``--help`` in one interpreter and prints
# {script: [exit code, stderr tail]}: an interpreter per script spent ~1.5 s of CPU each
# importing the same packages.  A name a script imports that does not exist still fails it.
_HELP_ALL = """
import contextlib, io, json, runpy, sys
done = {}
sys.path.insert(0, "bench")
for script in sys.argv[1:]:
    err = io.StringIO()
    sys.argv = [script, "--help"]
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:
            code = 1
            err.write(repr(exc))
    done[script] = [code, err.getvalue()[-2000:]]
print(json.dumps(done))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, list[Any]]:
    out = _run("-c", _HELP_ALL, *(f"bench/{script}" for script in SCRIPTS))
    result: dict[str, list[Any]] = json.loads(out.splitlines()[-1])
    return result


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_bench_imports(script: str, helps: dict[str, list[Any]]) -> None:
    """``--help`` imports the script and everything it names from ``sealmail``."""
    code, stderr = helps[f"bench/{script}"]
    assert code == 0, stderr
