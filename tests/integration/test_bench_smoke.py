"""The benchmarks still run: a reshape that renames a service method must not leave ``bench/``
quietly broken (issue 18's figures come from these scripts).  Tiny sizes — a smoke run, not a
measurement."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.ca import TestCA
from tests.support.smtp_sink import SmtpSink

from sealmail.app import Services, build_gateway
from sealmail.crypto.devcert import create_dev_certificates
from sealmail.messages.schemas import message_page

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


def test_marketing_bench_runs_and_an_opt_out_is_honoured_at_the_next_claim(tmp_path: Path) -> None:
    """SQLite, a few hundred contacts: every step runs, the journey with a send queues one
    message a contact, each contact whose consent was revoked is skipped at its claim, and the
    campaign queues one message per member of its segment."""
    out = tmp_path / "marketing.md"
    table = _run(
        "bench/marketing.py",
        *("--contacts", "300", "--engines", "sqlite", "--repeat", "1", "--journeys", "40"),
        *("--send-journeys", "30", "--optouts", "10", "--campaign-contacts", "60", "--out", str(out)),
    )
    assert out.read_text() in table  # the recorded results file is left alone
    assert "journey steps with a send (30 sends)" in table
    assert "| sqlite | 10 | 10 | 20 | 0 |" in table  # revoked, skipped, let through, wrong
    assert "| sqlite | campaign messages queued (expansion), 1 expander | 60 |" in table


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


# -- the bench's SMTP clients against real servers on loopback ------------------------------------


@pytest.fixture(scope="module")
def server_ca() -> Iterator[TestCA]:
    with TestCA() as ca:
        yield ca


@pytest.fixture
def mta_load(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("mta_load")


def _messages(mta_load: Any, recipients: list[str]) -> list[tuple[str, bytes]]:
    # A line that starts with "." goes through dot-stuffing and must arrive as written.
    return [
        (to, mta_load.raw_message(i, "smoke", 300)[1] + b".leading dot\r\n")
        for i, to in enumerate(recipients)
    ]


@pytest.mark.parametrize(
    ("client", "pipelining"), [("pipelined", True), ("pipelined", False), ("aiosmtplib", True)]
)
def test_the_bench_smtp_clients_count_only_accepted_messages(
    mta_load: Any, server_ca: TestCA, client: str, pipelining: bool
) -> None:
    """Every message is sent over STARTTLS + AUTH PLAIN on reused connections; a refused RCPT
    counts as not accepted and the connection goes on.  The pipelined client sends MAIL, RCPT
    and DATA in one write when PIPELINING is offered, and talks lockstep when it is not."""
    ok = [f"patient-{i}@example.org" for i in range(5)]
    sent = _messages(mta_load, [*ok[:2], "permfail-550@example.org", *ok[2:]])
    login = ("bench", "secret")
    with SmtpSink(
        "127.0.0.1",
        cert=server_ca.issue("127.0.0.1"),
        require_tls=True,
        auth=dict([login]),
        pipelining=pipelining,
    ) as sink:
        latencies: list[float] = []
        accepted = asyncio.run(mta_load.smtp_send(sink.port, sent, 2, login, latencies, client))
        got = sink.wait_for(5)
    assert accepted == 5 and len(latencies) == 5
    assert sorted(m.rcpt_tos[0] for m in got) == ok
    assert all(m.tls and m.authenticated_as == "bench" for m in got)
    assert {m.data for m in got} == {data for to, data in sent if to in ok}
    if client == "pipelined":  # aiosmtplib's client starts again on a new connection after a refusal
        assert sink.connections == 2
    assert sink.pipelined_batches == (6 if client == "pipelined" and pipelining else 0)


async def _offers_pipelining(mta_load: Any, port: int, login: tuple[str, str]) -> bool:
    session = await mta_load._Session.open(port, login, mta_load._tls_context())
    await session.quit()
    return bool(session.pipelining)


def test_the_pipelined_bench_client_against_the_gateway(
    mta_load: Any, services: Services, tenant: Any, tmp_path: Path
) -> None:
    """Against Sealmail's submission gateway (which offers PIPELINING and answers a group in one
    write): every accepted message is stored, the refused recipient is not."""
    _, cert, key = create_dev_certificates(tmp_path / "tls", ["127.0.0.1"])
    update = {"smtp_host": "127.0.0.1", "smtp_port": 0, "smtp_tls_cert": cert, "smtp_tls_key": key}
    gateway = build_gateway(services, services.settings.model_copy(update=update))
    gateway.start()
    try:
        _, user, password = services.tenancy.create_smtp_credential(tenant.id, actor="test")
        recipients = [mta_load.rcpt(i) for i in range(4)]
        sent = _messages(mta_load, [*recipients[:2], "someone@example.test", *recipients[2:]])
        accepted = asyncio.run(mta_load.smtp_send(gateway.port, sent, 2, (user, password)))
        assert asyncio.run(_offers_pipelining(mta_load, gateway.port, (user, password)))
    finally:
        gateway.stop()
    assert accepted == 4
    assert len(message_page(services.messages.search(tenant.principal))["data"]) == 4
