"""Dependencies point inward: the import-linter contracts in .importlinter hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a dev dependency; run `make install`"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_cli_and_the_worker_start_without_the_web_framework() -> None:
    """Only the API role serves FastAPI apps; a CLI command or a worker child that imported the
    framework and every console page paid for it at each start (~0.2 s of 1.7)."""
    probe = "import sys, sealmail.cli, sealmail.app; print(sorted(m for m in sys.modules if m in WEB))"
    code = f"WEB = {{'fastapi', 'starlette', 'sealmail.console.web', 'sealmail.sms.web'}}; {probe}"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert ran.stdout.strip() == "[]"
