"""Sealmail throughput benchmark: API accept → delivery at a loopback MX over verified TLS.

    .venv/bin/python bench/throughput.py [--engine sqlite|postgresql|both] [--messages N]
        [--size 5120] [--clients C] [--scenarios e2e,split,queue] [--workers 2]
        [--profile] [--set SEALMAIL_X=value ...]

Everything runs as real processes on loopback:

* ``bench/sink.py`` — the MX: aiosmtpd with mandatory STARTTLS and a certificate for
  ``mx.bench.test`` from a throwaway CA (trustme), counting and discarding messages, plus
  the loopback DNS server (``tests/support/dns_server.py``) publishing
  ``patients.sealmail-bench.org MX 10 mx.sealmail-bench.org`` and its A record 127.0.0.2.
* Sealmail — ``sealmail init`` then ``sealmail serve`` (all roles, or ``--role api`` and
  ``--role worker`` processes) with ``outbound_mode=mx``, the loopback resolver, the bench CA
  as ``tls_ca_file``, MTA-STS and DANE off.  Messages go on the ``phi`` stream, whose
  policy is ``require_verified``: every delivery does a real MX lookup and verifies the
  certificate against the MX name.
* This process — the load generator: C keep-alive HTTP/1.1 connections (a minimal asyncio
  client, far cheaper than httpx) POSTing JSON messages to ``/v1/messages``.

Scenarios (each on a fresh home directory and a fresh database):

* ``e2e``   — one ``sealmail serve`` process (all roles); rate from first POST to the last
              message counted at the sink, accept rate and latency, CPU split, RSS.
* ``split`` — ``--role api`` plus ``--workers`` ``--role worker`` processes, same load.
* ``queue`` — ``--role api`` only while N messages are pre-loaded (pure intake rate), then
              ``--workers`` worker processes start: pure delivery rate (claim → decrypt →
              SMTP over verified TLS → record).

Results are printed as markdown and written to ``bench/results/latest.md`` (and a JSON
file next to it).  Every child process, temporary directory and the temporary
PostgreSQL database are removed on exit, Ctrl-C and failure included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
SEALMAIL = str(VENV_BIN / "sealmail")
PY_SPY = VENV_BIN / "py-spy"
CLK_TCK = os.sysconf("SC_CLK_TCK")

DOMAIN = "patients.sealmail-bench.org"  # resolved only by the loopback DNS server
MX_NAME = "mx.sealmail-bench.org"
SINK_IP = "127.0.0.2"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# SEALMAIL_BENCH_PG_DB: another database name, so sessions sharing a server do not drop each
# other's database (postfix_compare.py takes it too).  A plain identifier: it is put in SQL.
PG_DB = os.environ.get("SEALMAIL_BENCH_PG_DB") or "sealmail_bench"
if not PG_DB.isidentifier() or not PG_DB.isascii():
    raise SystemExit(f"SEALMAIL_BENCH_PG_DB must be a plain identifier, not {PG_DB!r}")
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"


# -- /proc helpers ------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (``sealmail serve``'s worker child among them)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in task.read_text().split()]
    return found


def family_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its direct children: one ``sealmail serve`` command's share."""
    return proc_cpu_seconds(pid) + sum(proc_cpu_seconds(c) for c in child_pids(pid))


def proc_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(x) for x in parts[:8]]
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / CLK_TCK, sum(vals) / CLK_TCK


def all_proc_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process on the machine, with its command name."""
    out: dict[int, tuple[str, float]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.find("(") + 1 : raw.rfind(")")]
        f = raw.rsplit(")", 1)[1].split()
        out[int(d.name)] = (comm, (int(f[11]) + int(f[12])) / CLK_TCK)
    return out


def background_busy(seconds: float = 1.0) -> float:
    """Share (%) of all cores busy over ``seconds`` (before a scenario: other sessions' load)."""
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return 100 * (b1 - b0) / max(t1 - t0, 1e-9)


def wait_quiet(limit_pct: float, max_wait: float) -> float:
    """Wait (bounded) until the machine is mostly idle; returns the last busy % seen."""
    deadline = time.monotonic() + max_wait
    busy = background_busy()
    while busy > limit_pct and time.monotonic() < deadline:
        busy = background_busy()
    return busy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_description() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# -- child processes ------------------------------------------------------------------------
@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


class Harness:
    """Owns every process, directory and database the benchmark creates."""

    def __init__(self, keep: bool = False) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="sealmail-bench-"))
        self.children: list[Child] = []
        self.pg_created = False
        self.keep = keep

    def spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Child:
        log = self.tmp / f"{name}-{len(self.children)}.log"
        fh = log.open("wb")
        popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        fh.close()
        child = Child(name, popen, log)
        self.children.append(child)
        return child

    def stop(self, child: Child, grace: float = 15.0) -> None:
        """SIGTERM (the product's graceful stop), then SIGKILL of its process group."""
        p = child.popen
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in list(reversed(self.children)):
            self.stop(child, grace=10.0)

    def pg_reset(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_DB}")
        self.pg_created = True

    def pg_drop(self) -> None:
        if not self.pg_created:
            return
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        self.pg_created = False

    def cleanup(self) -> None:
        self.stop_all()
        with contextlib.suppress(Exception):
            self.pg_drop()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- the sink -----------------------------------------------------------------------------
@dataclass
class SinkState:
    count: int
    rcpts: int
    first: float
    last: float
    conns: int
    plaintext: int


class Sink:
    def __init__(self, harness: Harness, pipelining: bool = False) -> None:
        import trustme

        self.h = harness
        d = harness.tmp / "pki"
        d.mkdir()
        ca = trustme.CA()
        leaf = ca.issue_cert(MX_NAME)
        self.ca_file = d / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert, key = d / "mx.crt", d / "mx.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        self.state_file = harness.tmp / "sink.state"
        argv = [
            sys.executable, str(BENCH / "sink.py"), "--host", SINK_IP, "--cert", str(cert),
            "--key", str(key), "--state", str(self.state_file), "--domain", DOMAIN, "--mx", MX_NAME,
        ]  # fmt: skip
        if pipelining:
            argv.append("--pipelining")
        self.child = harness.spawn("sink", argv, dict(os.environ), ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.child.log.read_text(errors="replace")
            m = re.search(r"READY (\d+) (\d+)", text)
            if m:
                self.smtp_port, self.dns_port = int(m.group(1)), int(m.group(2))
                break
            if self.child.popen.poll() is not None:
                raise RuntimeError(f"sink died:\n{text}")
            time.sleep(0.05)
        else:
            raise RuntimeError("sink did not start within 20 s")

    @property
    def pid(self) -> int:
        return self.child.pid

    def state(self) -> SinkState:
        for _ in range(20):
            try:
                parts = self.state_file.read_text().split()
                return SinkState(
                    int(parts[0]), int(parts[1]), float(parts[2]), float(parts[3]),
                    int(parts[4]), int(parts[5]),
                )  # fmt: skip
            except (OSError, IndexError, ValueError):
                time.sleep(0.01)
        raise RuntimeError("cannot read sink state")

    def wait_for(self, count: int, timeout: float, seen: list[float] | None = None) -> SinkState:
        """Poll until ``count``; ``seen`` (if given) gets the time the first new message was seen."""
        deadline = time.monotonic() + timeout
        base = self.state().count
        while True:
            st = self.state()
            if seen is not None and not seen and st.count > base:
                seen.append(st.last)  # last arrival at the first poll that saw progress (±20 ms)
            if st.count >= count:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink has {st.count} messages, waited for {count} ({timeout:.0f} s)")
            if self.child.popen.poll() is not None:
                raise RuntimeError("sink died")
            time.sleep(0.02)


# -- RSS / CPU sampling ---------------------------------------------------------------------
class Sampler(threading.Thread):
    """Samples VmRSS of the Sealmail processes every 0.25 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._stop_ev = threading.Event()

    def run(self) -> None:
        while not self._stop_ev.wait(0.25):
            for name, pid in self.pids.items():
                rss = proc_rss_mib(pid)
                if rss:
                    self.samples[name].append(rss)

    def stop(self) -> None:
        self._stop_ev.set()
        self.join(timeout=2)


class CpuWindow:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {n: family_cpu_seconds(p) for n, p in pids.items()}
        self.self_start = sum(os.times()[:2])
        self.all_start = all_proc_cpu()
        self.machine_start = machine_cpu()
        self.t0 = time.monotonic()

    def finish(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        per = {n: family_cpu_seconds(p) - self.start[n] for n, p in self.pids.items()}
        per["loadgen"] = sum(os.times()[:2]) - self.self_start
        busy1, total1 = machine_cpu()
        busy = busy1 - self.machine_start[0]
        ours = set(self.pids.values()) | {os.getpid()}
        ours |= {c for p in self.pids.values() for c in child_pids(p)}
        pg = foreign = 0.0
        for pid, (comm, c1) in all_proc_cpu().items():
            if pid in ours:
                continue
            c0 = self.all_start.get(pid, (comm, 0.0))[1]
            if comm.startswith("postgres"):
                pg += c1 - c0
            else:
                foreign += c1 - c0
        per["postgres server"] = pg
        per["other processes (not the bench)"] = foreign
        per["unattributed (kernel, exited procs)"] = max(0.0, busy - sum(per.values()))
        return {
            "wall": wall,
            "cpu": per,
            "machine_busy": busy,
            "machine_total": total1 - self.machine_start[1],
        }


# -- load generator ----------------------------------------------------------------------------
def make_body_template(size: int) -> tuple[bytes, bytes]:
    line = "The quick brown fox jumps over the lazy dog; Sealmail benchmark text 0123456789.\r\n"
    text = (line * (size // len(line) + 1))[:size]
    msg = {
        "from": "Bench Clinic <noreply@clinic.example>",
        "to": ["__RCPT__"],
        "subject": "Benchmark message __N__",
        "text": text,
        "stream": "phi",
    }
    raw = json.dumps(msg).encode()
    head, tail = raw.split(b"__RCPT__")
    return head, tail


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    t_first: float = 0.0  # time.time() of the first request
    t_last_ok: float = 0.0  # time.time() of the last 202
    sample_id: str | None = None
    errors: Counter[str] = field(default_factory=Counter)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v.strip())
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body
    return status, await reader.readexactly(length) if length else b""


async def run_load(
    port: int,
    api_key: str,
    n: int,
    clients: int,
    size: int,
    tag: str,
    timeout: float,  # noqa: ASYNC109 — one bound for the whole run, spread over many awaits
    rcpts: int = 0,
) -> LoadResult:
    head, tail = make_body_template(size)
    res = LoadResult()
    todo = iter(range(n))
    auth = f"Bearer {api_key}".encode()

    def request(i: int) -> bytes:
        # ``rcpts``: cycle over that many recipients (e.g. the ones with a certificate).
        who = i % rcpts if rcpts else i
        body = head + f"patient-{tag}-{who}@{DOMAIN}".encode() + tail.replace(b"__N__", str(i).encode())
        return (
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + auth
            + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body
        )  # fmt: skip

    async def client() -> None:
        reader = writer = None
        for i in todo:
            req = request(i)
            for attempt in range(3):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    if not res.t_first:
                        res.t_first = time.time()
                    t0 = time.perf_counter()
                    writer.write(req)
                    status, body = await _read_response(reader)  # type: ignore[arg-type]
                    res.latencies.append(time.perf_counter() - t0)
                    res.sent += 1
                    res.statuses[status] += 1
                    if status == 202:
                        res.ok += 1
                        res.t_last_ok = time.time()
                        if res.sample_id is None:
                            res.sample_id = json.loads(body)["id"]
                    elif len(res.errors) < 5:
                        res.errors[body[:300].decode(errors="replace")] += 1
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    res.errors[type(exc).__name__] += 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    if attempt == 2:
                        res.sent += 1
        if writer is not None:
            writer.close()

    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), timeout)
    return res


async def http_get(port: int, path: str, api_key: str | None = None) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        hdr = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if api_key:
            hdr += f"Authorization: Bearer {api_key}\r\n"
        writer.write((hdr + "\r\n").encode())
        return await asyncio.wait_for(_read_response(reader), 10)
    finally:
        writer.close()


def wait_healthy(port: int, child_procs: list[Child], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in child_procs:
            if c.popen.poll() is not None:
                raise RuntimeError(f"{c.name} exited:\n{c.log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            status, _ = asyncio.run(http_get(port, "/healthz"))
            if status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError("API not healthy in time")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


# -- profiling ---------------------------------------------------------------------------------
class Profiler:
    """py-spy record (raw collapsed stacks) on one pid until stopped."""

    def __init__(self, harness: Harness, pid: int, name: str, rate: int = 97, *, gil: bool = True) -> None:
        name = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.out = harness.tmp / f"profile-{name}.txt"
        self.name = name
        argv = [
            str(PY_SPY), "record", "--pid", str(pid), "--format", "raw", "--output", str(self.out),
            "--rate", str(rate), "--nonblocking", "--duration", "600",
        ]  # fmt: skip
        if gil:
            # Only the thread holding the GIL: samples are Python CPU time, not lock or fsync
            # waits (without it a thread blocked in COMMIT or on the GIL counts as busy).  It
            # also leaves out C code that releases the GIL (RSA in ``cryptography``, Sequoia).
            argv.append("--gil")
        self.child = harness.spawn(f"py-spy-{name}", argv, dict(os.environ), ROOT)
        self.h = harness

    def stop(self) -> list[str]:
        p = self.child.popen
        if p.poll() is None:
            p.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
        self.h.stop(self.child, grace=1)
        if not self.out.exists():
            return [f"(py-spy produced no output: {self.child.log.read_text(errors='replace')[-500:]})"]
        dest = BENCH / "results" / f"profile-{self.name}.folded"
        shutil.copy(self.out, dest)
        return summarize_profile(self.out)


_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    f = m.group("file")
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in f:
            f = f.split(marker, 1)[1]
            break
    return f"{m.group('fn')} ({f})"


def summarize_profile(path: Path, top: int = 25) -> list[str]:
    self_counts: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = [_short(f) for f in stack.split(";")[1:]]  # first element is the thread
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    out = [f"samples (non-idle): {total}", "", "| self % | function |", "|---:|---|"]
    for fn, c in self_counts.most_common(top):
        out.append(f"| {100 * c / total:.1f} | `{fn}` |")
    out += ["", "| inclusive % | function (sealmail/ and selected libraries) |", "|---:|---|"]
    shown = 0
    for fn, c in incl.most_common():
        if any(k in fn for k in ("sealmail/", "sqlalchemy/engine/base", "argon2", "aiosmtplib/", "json",
                                 "fastapi/routing", "pydantic", "email/", "dns/", "ssl", "psycopg", "sqlite3",
                                 "starlette/", "uvicorn/", "h11/", "cryptography")):  # fmt: skip
            out.append(f"| {100 * c / total:.1f} | `{fn}` |")
            shown += 1
            if shown >= 45:
                break
    return out


# -- scenarios ---------------------------------------------------------------------------------
@dataclass
class Ctx:
    args: argparse.Namespace
    harness: Harness
    sink: Sink
    results: list[dict[str, Any]] = field(default_factory=list)
    profiles: dict[str, list[str]] = field(default_factory=dict)
    bg_before: float = 0.0  # machine busy % just before the current scenario (other sessions)


def sealmail_env(ctx: Ctx, engine: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMAIL_")}
    env.update(
        {
            "SEALMAIL_HOME": str(home),
            "SEALMAIL_CONFIG": str(home / "none.toml"),
            "SEALMAIL_DATABASE_URL": PG_URL if engine == "postgresql" else "",
            "SEALMAIL_API_PORT": str(free_port()),
            "SEALMAIL_SMTP_PORT": str(free_port()),
            "SEALMAIL_CAPTURE_PORT": str(free_port()),
            "SEALMAIL_OUTBOUND_MODE": "mx",
            "SEALMAIL_DNS_NAMESERVERS": json.dumps([f"127.0.0.1:{ctx.sink.dns_port}"]),
            "SEALMAIL_MX_PORT": str(ctx.sink.smtp_port),
            "SEALMAIL_TLS_CA_FILE": str(ctx.sink.ca_file),
            "SEALMAIL_MTA_STS_ENABLED": "false",
            "SEALMAIL_DANE_ENABLED": "false",
            "SEALMAIL_SMTP_HOSTNAME": "sealmail-bench.localhost",
            "SEALMAIL_LOG_LEVEL": "warning",
            # The bench measures throughput, not the per-key limit (600 a minute by default).
            "SEALMAIL_API_RATE_LIMIT_PER_MINUTE": "100000000",
        }
    )
    for item in ctx.args.set or []:
        k, _, v = item.partition("=")
        env[k] = v
    return env


def init_instance(ctx: Ctx, engine: str, name: str) -> tuple[dict[str, str], Path, str]:
    home = ctx.harness.tmp / f"home-{engine}-{name}"
    home.mkdir()
    if engine == "postgresql":
        ctx.harness.pg_reset()
    env = sealmail_env(ctx, engine, home)
    out = subprocess.run(
        [SEALMAIL, "init", "--tenant", "Bench Clinic"], env=env, cwd=home, capture_output=True,
        timeout=180, check=False,
    )  # fmt: skip
    text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
    m = re.search(r"API key \(shown once\):\s*(sm_\S+)", text)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"sealmail init failed ({out.returncode}):\n{text[-3000:]}")
    return env, home, m.group(1)


def serve(ctx: Ctx, env: dict[str, str], home: Path, name: str, roles: list[str]) -> Child:
    argv = [SEALMAIL, "serve"]
    for r in roles:
        argv += ["--role", r]
    return ctx.harness.spawn(name, argv, env, home)


def warm_up(ctx: Ctx, port: int, key: str, n: int) -> None:
    """Authenticate once (argon2), open pooled SMTP connections, warm caches."""
    if n <= 0:
        return
    base = ctx.sink.state().count
    res = asyncio.run(run_load(port, key, n, min(ctx.args.clients, n), ctx.args.size, "warm", 60))
    if res.ok != n:
        raise RuntimeError(
            f"warm-up: {res.ok}/{n} accepted; statuses {dict(res.statuses)} {dict(res.errors)}"
        )
    ctx.sink.wait_for(base + n, 60)


def check_sample(port: int, key: str, message_id: str | None) -> str:
    """One delivered message's attempt, to prove verified TLS to the MX name."""
    if not message_id:
        return "no sample"
    for _ in range(50):
        status, body = asyncio.run(http_get(port, f"/v1/messages/{message_id}", key))
        if status == 200:
            data = json.loads(body)
            tries = data["recipients"][0]["attempts"]
            if tries:
                a = tries[-1]
                return (
                    f"{a['status']} via {a['mx_host']} ({a['mx_ip']}), {a['tls']['version']} "
                    f"{a['tls']['cipher']}, verified={a['tls']['verified']} by {a['tls']['verified_by']}"
                )
        time.sleep(0.1)
    return "sample not recorded yet"


def measure_load(
    ctx: Ctx, engine: str, scenario: str, port: int, key: str, pids: dict[str, int], profile_pid: int | None
) -> dict[str, Any]:
    a = ctx.args
    base = ctx.sink.state()
    sampler = Sampler(pids)
    sampler.start()
    prof = Profiler(ctx.harness, profile_pid, f"{engine}-{scenario}") if profile_pid else None
    if prof:
        time.sleep(1.0)  # let py-spy attach
    cpu = CpuWindow({**pids, "sink+dns": ctx.sink.pid})
    try:
        res = asyncio.run(run_load(port, key, a.messages, a.clients, a.size, scenario.split()[0], a.timeout))
        accept_cpu = cpu.finish()
        st = ctx.sink.wait_for(base.count + res.ok, a.timeout)
        total_cpu = cpu.finish()
    finally:
        sampler.stop()
        if prof:
            ctx.profiles[f"{engine} {scenario}"] = prof.stop()
    accept_wall = res.t_last_ok - res.t_first
    e2e_wall = st.last - res.t_first
    n = res.ok
    return {
        "engine": engine,
        "scenario": scenario,
        "messages": n,
        "failed": res.sent - res.ok,
        "statuses": dict(res.statuses),
        "errors": dict(res.errors),
        "accept_rate": n / accept_wall if accept_wall > 0 else float("nan"),
        "e2e_rate": n / e2e_wall if e2e_wall > 0 else float("nan"),
        "drain_after_accept_s": st.last - res.t_last_ok,
        "p50_ms": 1000 * pct(res.latencies, 50),
        "p99_ms": 1000 * pct(res.latencies, 99),
        "max_ms": 1000 * max(res.latencies or [float("nan")]),
        "rss": {k: {"median": statistics.median(v), "max": max(v)} for k, v in sampler.samples.items() if v},
        "cpu_accept_phase": accept_cpu,
        "cpu": total_cpu,
        "sink_conns": st.conns - base.conns,
        "sink_plaintext": st.plaintext - base.plaintext,
        "sample": check_sample(port, key, res.sample_id),
        "profiled": bool(prof),
        "bg_before": ctx.bg_before,
    }


def scenario_e2e(ctx: Ctx, engine: str) -> None:
    env, home, key = init_instance(ctx, engine, "e2e")
    port = int(env["SEALMAIL_API_PORT"])
    proc = serve(ctx, env, home, "serve-all", [])
    try:
        wait_healthy(port, [proc])
        warm_up(ctx, port, key, ctx.args.warmup)
        r = measure_load(
            ctx, engine, "e2e (1 process, all roles)", port, key, {"sealmail serve": proc.pid},
            proc.pid if ctx.args.profile else None,
        )  # fmt: skip
        ctx.results.append(r)
        print_one(r)
    finally:
        ctx.harness.stop(proc)


def scenario_split(ctx: Ctx, engine: str) -> None:
    env, home, key = init_instance(ctx, engine, "split")
    port = int(env["SEALMAIL_API_PORT"])
    api = serve(ctx, env, home, "serve-api", ["api"])
    workers = [serve(ctx, env, home, f"serve-worker{i}", ["worker"]) for i in range(ctx.args.workers)]
    try:
        wait_healthy(port, [api, *workers])
        warm_up(ctx, port, key, ctx.args.warmup)
        pids = {"api": api.pid, **{f"worker{i}": w.pid for i, w in enumerate(workers)}}
        r = measure_load(
            ctx, engine, f"split (api + {len(workers)} worker procs)", port, key, pids,
            api.pid if ctx.args.profile else None,
        )  # fmt: skip
        ctx.results.append(r)
        print_one(r)
    finally:
        for c in [*workers, api]:
            ctx.harness.stop(c)


def scenario_queue(ctx: Ctx, engine: str) -> None:
    a = ctx.args
    env, home, key = init_instance(ctx, engine, "queue")
    port = int(env["SEALMAIL_API_PORT"])
    api = serve(ctx, env, home, "serve-api", ["api"])
    workers: list[Child] = []
    try:
        wait_healthy(port, [api])
        # Intake only: no worker is running, so this is the pure accept rate.
        cpu = CpuWindow({"api": api.pid})
        sampler = Sampler({"api": api.pid})
        sampler.start()
        res = asyncio.run(run_load(port, key, a.messages, a.clients, a.size, "queue", a.timeout))
        sampler.stop()
        intake_cpu = cpu.finish()
        if res.ok != a.messages:
            print(f"  warning: {res.ok}/{a.messages} accepted: {dict(res.statuses)} {dict(res.errors)}")
        base = ctx.sink.state()
        spawn_t = time.time()
        workers = [serve(ctx, env, home, f"serve-worker{i}", ["worker"]) for i in range(a.workers)]
        pids = {f"worker{i}": w.pid for i, w in enumerate(workers)}
        wsampler = Sampler(pids)
        wsampler.start()
        prof = None
        if a.profile:
            time.sleep(0.3)
            prof = Profiler(ctx.harness, workers[0].pid, f"{engine}-queue-worker")
        cpu2 = CpuWindow({**pids, "sink+dns": ctx.sink.pid})
        try:
            first_seen: list[float] = []
            st = ctx.sink.wait_for(base.count + res.ok, a.timeout, first_seen)
            dcpu = cpu2.finish()
        finally:
            wsampler.stop()
            if prof:
                ctx.profiles[f"{engine} queue-only worker"] = prof.stop()
        n = res.ok
        r = {
            "engine": engine,
            "scenario": f"queue-only ({len(workers)} worker proc{'s' if len(workers) > 1 else ''})",
            "messages": n,
            "failed": res.sent - res.ok,
            "statuses": dict(res.statuses),
            "errors": dict(res.errors),
            "accept_rate": n / (res.t_last_ok - res.t_first),
            "p50_ms": 1000 * pct(res.latencies, 50),
            "p99_ms": 1000 * pct(res.latencies, 99),
            "max_ms": 1000 * max(res.latencies or [float("nan")]),
            "intake_cpu": intake_cpu,
            "intake_rss": {
                k: {"median": statistics.median(v), "max": max(v)} for k, v in sampler.samples.items() if v
            },
            "delivery_rate_from_spawn": n / (st.last - spawn_t),
            "delivery_rate_steady": (
                (n - 1) / (st.last - first_seen[0])
                if first_seen and st.last > first_seen[0]
                else float("nan")
            ),
            "worker_startup_s": (first_seen[0] - spawn_t) if first_seen else float("nan"),
            "rss": {
                k: {"median": statistics.median(v), "max": max(v)} for k, v in wsampler.samples.items() if v
            },
            "cpu": dcpu,
            "sink_conns": st.conns - base.conns,
            "sink_plaintext": st.plaintext - base.plaintext,
            "sample": check_sample(port, key, res.sample_id),
            "profiled": bool(prof),
            "bg_before": ctx.bg_before,
        }  # fmt: skip
        ctx.results.append(r)
        print_one(r)
    finally:
        for c in [*workers, api]:
            ctx.harness.stop(c)


# -- reporting -----------------------------------------------------------------------------------
def _f(x: Any, nd: int = 0) -> str:
    if isinstance(x, float):
        if x != x:
            return "–"
        return f"{x:,.{nd}f}"
    return str(x)


def print_one(r: dict[str, Any]) -> None:
    print(f"\n== {r['engine']} / {r['scenario']}")
    for k in ("messages", "failed", "accept_rate", "e2e_rate", "delivery_rate_from_spawn",
              "delivery_rate_steady", "worker_startup_s", "p50_ms", "p99_ms", "sink_conns",
              "sink_plaintext", "sample"):  # fmt: skip
        if k in r:
            print(f"  {k}: {_f(r[k], 1) if isinstance(r[k], float) else r[k]}")
    cpu = r["cpu"]
    print(f"  wall {cpu['wall']:.1f}s; cpu s: " + ", ".join(f"{k}={v:.1f}" for k, v in cpu["cpu"].items()))
    print("  rss MiB: " + ", ".join(f"{k}={v['median']:.0f}/{v['max']:.0f}" for k, v in r["rss"].items()))
    if r.get("errors"):
        print(f"  errors: {r['errors']}")


def cpu_split(cpu: dict[str, Any], n: int) -> str:
    ncpu = os.cpu_count() or 1
    parts = []
    for k, v in cpu["cpu"].items():
        parts.append(f"{k} {1000 * v / max(n, 1):.2f} ms ({100 * v / cpu['wall'] / ncpu:.0f} %)")
    busy = cpu["machine_busy"] / cpu["machine_total"] * 100 if cpu["machine_total"] else 0
    return "; ".join(parts) + f"; machine busy {busy:.0f} %"


def render(ctx: Ctx, machine: dict[str, Any], argv: list[str]) -> str:
    a = ctx.args
    lines = [
        "# Sealmail throughput — latest run",
        "",
        f"- when: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- machine: {machine['nproc']} CPU ({machine['cpu']}), {machine['mem']}, Linux {machine['kernel']}, "
        f"Python {machine['python']}",
        f"- command: `.venv/bin/python bench/throughput.py {' '.join(argv)}`",
        f"- messages per scenario: {a.messages} × {a.size} B text body (phi stream, require_verified TLS), "
        f"{a.clients} concurrent HTTP/1.1 keep-alive connections, warm-up {a.warmup} messages (not counted)",
        "- path: POST /v1/messages → SQLite/PostgreSQL → worker → MX lookup (loopback DNS) → SMTP STARTTLS "
        f"to {MX_NAME} ({SINK_IP}), certificate verified against the bench CA → sink counts and discards",
        "- extra settings: " + (", ".join(a.set) if a.set else "none (product defaults)"),
        "",
        "| engine | scenario | msgs | accept msg/s | end-to-end msg/s | delivery msg/s | accept p50 ms "
        "| accept p99 ms | Sealmail RSS MiB (median / max) | SMTP conns | vs 278 goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in ctx.results:
        rss = ", ".join(f"{k} {v['median']:.0f}/{v['max']:.0f}" for k, v in r["rss"].items())
        rate = r.get("e2e_rate", r.get("delivery_rate_steady", float("nan")))
        delivery = r.get("delivery_rate_steady")
        deliv = (
            f"{_f(delivery, 0)} (from spawn {_f(r['delivery_rate_from_spawn'], 0)})"
            if delivery is not None
            else "–"
        )
        lines.append(
            f"| {r['engine']} | {r['scenario']}{' (profiled)' if r.get('profiled') else ''} "
            f"| {r['messages']} "
            f"| {_f(r['accept_rate'], 0)} | {_f(r.get('e2e_rate', float('nan')), 0)} | {deliv} "
            f"| {_f(r['p50_ms'], 1)} | {_f(r['p99_ms'], 1)} | {rss} | {r['sink_conns']} "
            f"| {100 * rate / 278:.0f} % |"
        )
    lines += ["", "## CPU split (CPU ms per message, and share of all cores over the window)", ""]
    for r in ctx.results:
        lines.append(
            f"- **{r['engine']} / {r['scenario']}** (wall {r['cpu']['wall']:.1f} s): "
            f"{cpu_split(r['cpu'], r['messages'])}"
        )
        if "cpu_accept_phase" in r:
            lines.append(f"  - while POSTing only: {cpu_split(r['cpu_accept_phase'], r['messages'])}")
        if "intake_cpu" in r:
            lines.append(f"  - intake phase (no worker running): {cpu_split(r['intake_cpu'], r['messages'])}")
            lines.append(
                "    - api RSS "
                + ", ".join(f"{v['median']:.0f}/{v['max']:.0f} MiB" for v in r["intake_rss"].values())
            )
    lines += ["", "## Checks", ""]
    for r in ctx.results:
        lines.append(
            f"- {r['engine']} / {r['scenario']}: failed={r['failed']} statuses={r['statuses']} "
            f"plaintext deliveries at sink={r['sink_plaintext']}; machine busy just before start "
            f"{r.get('bg_before', 0):.0f} %; sample attempt: {r['sample']}"
        )
    if ctx.profiles:
        lines += [
            "",
            "## py-spy profiles (sampled at 97 Hz, --nonblocking; folded stacks in bench/results/)",
            "",
        ]
        for name, summary in ctx.profiles.items():
            lines += [f"### {name}", "", *summary, ""]
    lines += [
        "",
        "Targets: 278 msg/s (1 M/hour); stock Postfix on the same class of machine relays ~543 msg/s "
        "plaintext, 261 msg/s with TLS and a new connection per message, 326 msg/s with TLS connection reuse "
        "(shared/docs/research/performance.md).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--size", type=int, default=5120, help="text body bytes")
    p.add_argument("--clients", type=int, default=16, help="concurrent HTTP connections")
    p.add_argument("--scenarios", default="e2e,split,queue", help="comma list of e2e, split, queue")
    p.add_argument("--workers", type=int, default=2, help="worker processes in split/queue scenarios")
    p.add_argument("--warmup", type=int, default=50, help="messages sent and delivered before measuring")
    p.add_argument("--timeout", type=float, default=150.0, help="bound on each load/drain phase (s)")
    p.add_argument("--profile", action="store_true", help="py-spy the API/serve process (and one worker)")
    p.add_argument("--set", action="append", metavar="SEALMAIL_X=value", help="extra Sealmail env setting")
    p.add_argument(
        "--quiet-pct", type=float, default=15.0, help="wait until the machine is below this busy %%"
    )
    p.add_argument("--quiet-wait", type=float, default=60.0, help="...but wait at most this long (s)")
    p.add_argument("--output", default=str(BENCH / "results" / "latest.md"))
    p.add_argument("--keep", action="store_true", help="keep the temp directory (logs) for inspection")
    args = p.parse_args()
    if args.profile and not PY_SPY.exists():
        p.error(f"--profile needs py-spy: {VENV_BIN / 'pip'} install py-spy")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in scenarios:
        if s not in ("e2e", "split", "queue"):
            p.error(f"unknown scenario {s}")
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]

    # SIGTERM behaves like Ctrl-C so the finally clause cleans up.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    harness = Harness(keep=args.keep)
    (BENCH / "results").mkdir(exist_ok=True)
    machine = machine_description()
    print(f"machine: {machine}; temp dir {harness.tmp}")
    ctx: Ctx | None = None
    rc = 0
    try:
        sink = Sink(harness)
        ctx = Ctx(args, harness, sink)
        for engine in engines:
            for s in scenarios:
                print(f"\n-- {engine}: {s} ({args.messages} messages, {args.clients} clients)", flush=True)
                t0 = time.monotonic()
                ctx.bg_before = wait_quiet(args.quiet_pct, args.quiet_wait)
                print(f"  machine busy before start: {ctx.bg_before:.0f} %", flush=True)
                try:
                    {"e2e": scenario_e2e, "split": scenario_split, "queue": scenario_queue}[s](ctx, engine)
                except (RuntimeError, TimeoutError) as exc:
                    rc = 1
                    print(f"  FAILED: {exc}")
                    for c in harness.children:
                        if c.name.startswith("serve"):
                            print(f"  --- {c.name} log tail:\n{c.log.read_text(errors='replace')[-2000:]}")
                print(f"  ({time.monotonic() - t0:.0f} s)")
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up")
        rc = 130
    finally:
        if ctx is not None and ctx.results:
            text = render(ctx, machine, sys.argv[1:])
            Path(args.output).write_text(text)
            Path(args.output).with_suffix(".json").write_text(
                json.dumps(
                    {"machine": machine, "args": vars(args), "results": ctx.results}, indent=2, default=str
                )
            )
            print("\n" + text)
            print(f"written to {args.output}")
        harness.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
