"""A private, throwaway Postfix instance for ``bench/postfix_compare.py``.

Debian's package is installed if missing (``apt-get install postfix`` with the debconf
answer "No configuration", so the package never configures or starts a system-wide MTA on
port 25).  The instance lives entirely in one temporary directory: its own
``config_directory`` (``postfix -c DIR start``), queue, data directory and log file
(``maillog_file``, Postfix ≥ 3.4, so no syslog is needed).  It listens on a loopback high
port and relays everything to the bench sink:

* ``relayhost = [127.0.0.2]:<sink port>`` (brackets: no MX lookup),
* ``smtp_tls_security_level = encrypt`` — STARTTLS mandatory, the sink refuses plaintext
  anyway,
* connection reuse: ``smtp_connection_cache_on_demand`` (the default) plus
  ``smtp_tls_connection_reuse = yes`` (Postfix ≥ 3.4: TLS sessions live in ``tlsproxy`` so
  the ``scache`` can hand the connection to the next delivery; without it Postfix never
  reuses a TLS connection).

Intake offers STARTTLS (``smtpd_tls_security_level = may``) so the load generator can run
the same STARTTLS handshake against both MTAs; Postfix has no SASL here (that needs Dovecot
or Cyrus), so relaying is allowed by ``mynetworks`` = loopback instead of AUTH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

# Services a relay-only instance needs; chroot off (column 5) because the queue lives in a
# temporary directory that has no chroot skeleton (/etc/services, resolv.conf, ...).
MASTER_CF = """\
{listen}  inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsproxy  unix  -       -       n       -       0       tlsproxy
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# Command names of Postfix daemons (``/proc/<pid>/comm``), for CPU accounting.
DAEMONS = frozenset(
    {
        "master", "pickup", "cleanup", "qmgr", "tlsmgr", "trivial-rewrite", "bounce", "verify",
        "flush", "proxymap", "smtp", "smtpd", "showq", "error", "discard", "anvil", "scache",
        "tlsproxy", "postlogd",
    }
)  # fmt: skip


def ensure_installed() -> str:
    """The installed Postfix version; installs Debian's package (unconfigured) if missing."""
    if shutil.which("postfix") is None and not Path("/usr/sbin/postfix").exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["debconf-set-selections"],
            input=b"postfix postfix/main_mailer_type select No configuration\n",
            check=True,
        )
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "postfix"],
            env=env,
            check=True,
            timeout=900,
        )
    out = subprocess.run(["/usr/sbin/postconf", "-d", "-h", "mail_version"], capture_output=True, check=True)
    return out.stdout.decode().strip()


class PrivatePostfix:
    """One Postfix instance in ``root`` (config, queue, data, log), stopped by ``stop``."""

    def __init__(
        self, root: Path, port: int, relay: str, cert: Path, key: Path, extra: dict[str, str]
    ) -> None:
        self.root = root
        self.port = port
        self.conf = root / "etc"
        self.log = root / "maillog"
        self.started = False
        for d in (self.conf, root / "queue", root / "data"):
            d.mkdir(parents=True, exist_ok=True)
        # Daemons run as the ``postfix`` user: every directory above the queue must be searchable.
        for p in (root, *root.parents):
            if p == Path("/"):
                break
            p.chmod(p.stat().st_mode | 0o011)
        shutil.chown(root / "data", "postfix")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(root / "queue"),
            "data_directory": str(root / "data"),
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(root),
            "myhostname": "postfix-bench.localhost",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "mynetworks": "127.0.0.0/8",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "relayhost": relay,
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": str(cert),
            "smtpd_tls_key_file": str(key),
            "smtp_tls_security_level": "encrypt",
            "smtp_tls_connection_reuse": "yes",
            "smtp_connection_cache_on_demand": "yes",
            "smtp_tls_loglevel": "0",
            "message_size_limit": str(50 * 1024 * 1024),
            "biff": "no",
            "notify_classes": "",
        }
        main.update(extra)
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.conf / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"))

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        # Postfix prints its errors on stderr only when stderr is a terminal (else syslog, which
        # a container may lack); ``script`` gives it one so a failed start says why.
        cmd = " ".join(["/usr/sbin/postfix", "-c", str(self.conf), *args])
        return subprocess.run(
            ["script", "-qec", cmd, "/dev/null"], capture_output=True, timeout=60, check=False
        )

    def start(self, timeout: float = 60) -> None:
        # Marked started first: an interrupted start may still leave a master running.
        self.started = True
        out = self._postfix("start")
        if out.returncode != 0:
            raise RuntimeError(f"postfix start failed: {out.stdout.decode()} {out.stderr.decode()}")
        # ``postfix start`` returns before master has written its pid file; until then
        # ``postfix stop`` answers "not running", so wait for it (bounded).
        deadline = time.monotonic() + timeout
        while self.master_pid() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix master did not come up:\n{self.log_tail()}")
            time.sleep(0.1)

    def master_pid(self) -> int | None:
        """The running master's pid, or None (no pid file yet, or the process is gone)."""
        try:
            pid = int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def stop(self, timeout: float = 30) -> None:
        """``postfix stop``; waits (bounded) for master to exit; ``abort`` if it will not."""
        if not self.started:
            return
        deadline = time.monotonic() + timeout
        while self.master_pid() is None and time.monotonic() < deadline - timeout / 2:
            time.sleep(0.1)  # a start that was interrupted may still be bringing master up
        if self.master_pid() is not None:
            self._postfix("stop")
            while self.master_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.master_pid() is not None:
                self._postfix("abort")
        self.started = False

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""
