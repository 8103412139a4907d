"""Envelope encryption of content at rest.

Three layers, so that rotating a key never means re-encrypting content:

* a **master key** lives behind the ``KeyWrapper`` port (a 0600 local key file by
  default; a KMS or Vault Transit plugs in here);
* each tenant has **tenant keys** (AES-256), stored in the database wrapped by the master;
* each message has its own **data key** (AES-256-GCM), stored wrapped by a tenant key.

Destroying a message's wrapped data key crypto-shreds that message.  Rotating the master
rewraps the tenant keys; rotating a tenant key rewraps the message data keys.
The associated data binds every ciphertext to its tenant and owner id, so a blob copied
onto another row or tenant fails to decrypt instead of leaking.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


class KeyError_(Exception):
    """A key is missing, unreadable or the ciphertext does not authenticate."""


class KeyWrapper(Protocol):
    """The master-key port: wraps and unwraps tenant keys."""

    @property
    def active_key_id(self) -> str: ...

    def wrap(self, plaintext_key: bytes, aad: bytes) -> tuple[str, bytes]:
        """Wrap under the active master key; returns (master key id, wrapped)."""
        ...

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes: ...


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return seal_with(AESGCM(key), plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], aad)
    except InvalidTag as exc:
        raise KeyError_("ciphertext does not authenticate (wrong key or tampered data)") from exc


@dataclass(frozen=True, slots=True)
class _MasterKey:
    id: str
    key: bytes
    created_at: str


class LocalKeyFile:
    """Master keys in a JSON key file readable by the owner only.

    The file holds a key ring: rotation adds a key and makes it active while older keys
    stay to unwrap what has not been rewrapped yet, so no process has to stop.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: dict[str, _MasterKey] = {}
        self._active = ""
        self.reload()

    @staticmethod
    def create(path: Path) -> LocalKeyFile:
        """Create a key file with one fresh master key (0600); refuse to overwrite."""
        path.parent.mkdir(parents=True, exist_ok=True)
        ring = {"active": "", "keys": []}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(ring, fh)
        keyfile = LocalKeyFile.__new__(LocalKeyFile)
        keyfile.path = path
        keyfile._lock = threading.Lock()
        keyfile._keys = {}
        keyfile._active = ""
        keyfile.add_key()
        return keyfile

    def reload(self) -> None:
        if not self.path.exists():
            raise KeyError_(
                f"master key file {self.path} does not exist; run `sealmail init` "
                "or set SEALMAIL_MASTER_KEY_FILE"
            )
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise KeyError_(
                f"master key file {self.path} is readable by others (mode {mode:o}); "
                f"run `chmod 600 {self.path}`"
            )
        data = json.loads(self.path.read_text())
        keys = {
            k["id"]: _MasterKey(k["id"], base64.b64decode(k["key"]), k["created_at"]) for k in data["keys"]
        }
        with self._lock:
            self._keys = keys
            self._active = data["active"]

    def _write(self) -> None:
        data = {
            "active": self._active,
            "keys": [
                {"id": k.id, "key": base64.b64encode(k.key).decode(), "created_at": k.created_at}
                for k in self._keys.values()
            ],
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def add_key(self) -> str:
        """Add a new master key and make it active; returns its id."""
        key = AESGCM.generate_key(bit_length=256)
        key_id = "mk_" + base64.b32encode(os.urandom(10)).decode().lower()
        with self._lock:
            self._keys[key_id] = _MasterKey(key_id, key, datetime.now(UTC).isoformat())
            self._active = key_id
            self._write()
        return key_id

    def retire(self, key_id: str) -> None:
        """Drop an old master key once nothing is wrapped under it."""
        with self._lock:
            if key_id == self._active:
                raise KeyError_("cannot retire the active master key")
            self._keys.pop(key_id, None)
            self._write()

    def key_ids(self) -> list[str]:
        return list(self._keys)

    @property
    def active_key_id(self) -> str:
        return self._active

    def wrap(self, plaintext_key: bytes, aad: bytes) -> tuple[str, bytes]:
        master = self._keys[self._active]
        return master.id, _seal(master.key, plaintext_key, aad)

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        master = self._keys.get(key_id)
        if master is None:
            self.reload()  # another process may have rotated
            master = self._keys.get(key_id)
        if master is None:
            raise KeyError_(f"master key {key_id} is not in {self.path}")
        return _open(master.key, wrapped, aad)


def tenant_key_aad(tenant_id: str, tenant_key_id: str) -> bytes:
    return f"sealmail:tenant-key:{tenant_id}:{tenant_key_id}".encode()


def data_key_aad(tenant_id: str, owner_id: str) -> bytes:
    return f"sealmail:data-key:{tenant_id}:{owner_id}".encode()


def content_aad(tenant_id: str, owner_id: str) -> bytes:
    return f"sealmail:content:{tenant_id}:{owner_id}".encode()


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a random 96-bit nonce prepended."""
    return _seal(key, plaintext, aad)


def sealer(key: bytes) -> AESGCM:
    """``key``'s AES-256-GCM context for ``seal_with``: building one costs more than sealing
    a data key with it, so a key used for every message keeps its context."""
    return AESGCM(key)


def seal_with(aead: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """``seal`` under a context from ``sealer``: the same output format."""
    nonce = os.urandom(_NONCE)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    return _open(key, blob, aad)
