"""A throw-away GnuPG home for independent OpenPGP verification.

Each ``GnuPG`` owns one GNUPGHOME; ``close()`` kills the gpg-agent it started.  Output is
forced to the C locale so tests can match gpg's English status lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GPG = shutil.which("gpg")
GPGCONF = shutil.which("gpgconf")


@dataclass
class Result:
    stdout: bytes
    stderr: str
    returncode: int


class GnuPG:
    def __init__(self, home: Path) -> None:
        if GPG is None:
            raise RuntimeError("gpg is not installed")
        self.home = home
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._env = {**os.environ, "LC_ALL": "C", "LANG": "C", "GNUPGHOME": str(home)}

    def run(self, *args: str, stdin: bytes | None = None, check: bool = True) -> Result:
        assert GPG is not None
        proc = subprocess.run(
            [GPG, "--homedir", str(self.home), "--batch", "--no-tty", *args],
            input=stdin,
            capture_output=True,
            env=self._env,
            timeout=60,
            check=False,
        )
        result = Result(proc.stdout, proc.stderr.decode("utf-8", "replace"), proc.returncode)
        if check and proc.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed ({proc.returncode}):\n{result.stderr}")
        return result

    def gen_key(
        self,
        user_id: str,
        algo: str = "futuredefault",
        usage: str = "default",
        expire: str = "never",
        faked_time: str | None = None,
    ) -> str:
        """Create a key without a passphrase and return its fingerprint."""
        extra = ["--faked-system-time", faked_time] if faked_time else []
        self.run(
            *extra,
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            user_id,
            algo,
            usage,
            expire,
        )
        return self.fingerprint(user_id)

    def add_subkey(self, fingerprint: str, algo: str, usage: str, expire: str = "never") -> None:
        self.run(
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-add-key",
            fingerprint,
            algo,
            usage,
            expire,
        )

    def fingerprint(self, user_id: str) -> str:
        listing = self.run("--with-colons", "--list-keys", f"={user_id}").stdout.decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

    def export(self, fingerprint: str, *, armor: bool = True) -> bytes:
        return self.run(*(["--armor"] if armor else []), "--export", fingerprint).stdout

    def revocation_certificate(self, fingerprint: str) -> bytes:
        # gpg stores one at generation time with the armor lines prefixed by ":" so that an
        # accidental import does nothing; strip the guard to use it.
        text = (self.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_bytes()
        return b"\n".join(line[1:] if line.startswith(b":-----") else line for line in text.splitlines())

    def import_keys(self, data: bytes) -> None:
        self.run("--import", stdin=data)

    def decrypt(self, data: bytes) -> Result:
        """Decrypt with status lines on stderr (``[GNUPG:] DECRYPTION_OKAY`` etc.)."""
        return self.run("--status-fd", "2", "--decrypt", stdin=data, check=False)

    def list_packets(self, data: bytes) -> str:
        return self.run("--list-packets", stdin=data, check=False).stdout.decode("utf-8", "replace")

    def close(self) -> None:
        if GPGCONF is not None:
            subprocess.run(
                [GPGCONF, "--homedir", str(self.home), "--kill", "all"],
                env=self._env,
                capture_output=True,
                timeout=30,
                check=False,
            )
