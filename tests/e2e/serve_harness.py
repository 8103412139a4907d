"""``sealmail`` as a newcomer runs it, from the outside: ``init`` in a fresh home, then
``serve`` as a subprocess on free ports (``serving``), and what its processes look like in
``/proc``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.support.ports import unused_port
from tests.support.waiting import wait_until


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "sealmail.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"sealmail {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


class Output:
    """What ``serve`` (and its children) print, read as it comes: the pipe never fills up."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._pipe = proc.stdout
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._pipe:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def until_closed(self, timeout: float = 30) -> str:
        """Everything, once every writer (the parent and its children) has exited."""
        self._reader.join(timeout)
        return self.text()


@dataclass
class Running:
    env: dict[str, str]
    home: Path
    api: str
    smtp_port: int
    api_key: str
    proc: subprocess.Popen[str]
    output: Output

    def submit(self, subject: str = "Your results are ready") -> str:
        """A message through the API; its id."""
        resp = httpx.post(
            f"{self.api}/v1/messages",
            headers={"Authorization": f"Bearer {self.api_key}"},
            json={
                "from": "Clinic <noreply@clinic.example>",
                "to": ["patient@example.net"],
                "subject": subject,
                "text": "Hello from Sealmail",
                "stream": "phi",
            },
        )
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])

    def is_delivered(self, mid: str) -> bool:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        got = httpx.get(f"{self.api}/v1/messages/{mid}", headers=headers).json()
        return bool(got["recipients"][0]["status"] == "delivered")


@contextmanager
def serving(tmp_path: Path, **settings: str) -> Iterator[Running]:
    """``sealmail init`` and ``sealmail serve`` (every role) in ``tmp_path``, with ``settings``
    as ``SEALMAIL_*`` variables; SIGTERM (then SIGKILL) at the end if it still runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMAIL_")}
    api_port, smtp_port, capture_port, inbound_port = (unused_port() for _ in range(4))
    env.update(
        {
            "SEALMAIL_HOME": str(tmp_path / "var"),
            "SEALMAIL_API_PORT": str(api_port),
            "SEALMAIL_SMTP_PORT": str(smtp_port),
            "SEALMAIL_CAPTURE_PORT": str(capture_port),
            "SEALMAIL_SMTP_INBOUND_PORT": str(inbound_port),
            "SEALMAIL_CONFIG": str(tmp_path / "none.toml"),
            "SEALMAIL_ARGON2_MEMORY_KIB": "1024",
            "SEALMAIL_ARGON2_TIME_COST": "1",
            "SEALMAIL_OSV_REFRESH_MINUTES": "0",  # hermetic: no fetch from api.osv.dev
            "COLUMNS": "200",
        }
    )
    env.update({f"SEALMAIL_{k.upper()}": v for k, v in settings.items()})
    init = cli(env, "init")
    key = re.search(r"sm_[0-9a-f]+_[A-Za-z0-9_-]+", init.stdout)
    assert key, init.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealmail.cli", "serve"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{api_port}"

    output = Output(proc)

    def up() -> bool:
        if proc.poll() is not None:  # it exited: say so now, with what it printed
            raise AssertionError(f"sealmail serve exited {proc.returncode}:\n{output.until_closed(5)}")
        try:
            return httpx.get(f"{api}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        started(up, output, "sealmail serve did not come up")
        # The worker (in a child process, or in this one) is up too: delivery is what a test
        # waits for next, not a child interpreter's start on a busy machine.
        started(lambda: "worker.started" in output.text(), output, "no worker started")
        yield Running(env, tmp_path / "var", api, smtp_port, key.group(0), proc, output)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def started(predicate: Callable[[], bool], output: Output, what: str) -> None:
    """``predicate`` within a minute; if not, the failure carries what ``serve`` printed."""
    try:
        wait_until(predicate, timeout=60, message=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it printed:\n{output.text()[-8000:]}") from None


# -- processes, from /proc -------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (zombies not counted)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return sorted(c for c in found if alive(c))


def alive(pid: int) -> bool:
    """Running or sleeping: not gone and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
