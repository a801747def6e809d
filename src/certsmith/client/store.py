"""The client's files: accounts, keys and certificates under one config directory.

    accounts/SERVER/account.json, account.key   one account per CA (key 0600)
    archive/NAME/N/{cert,chain,fullchain,privkey}.pem   every version, whole
    live/NAME -> ../archive/NAME/N              swapped atomically (symlink rename)
    renewal/NAME.json                           how to renew NAME
    locks/NAME.lock                             one run per certificate at a time

Each version is written completely and fsynced before `live/NAME` is switched to it, so a
run killed at any point leaves `live/NAME` at a whole, matching certificate and key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from certsmith.acme.keys import PrivateKey, load_private_key, private_key_pem
from certsmith.client.session import AcmeClientError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_config_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/etc/certsmith")
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "certsmith"


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never a part."""
    private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def private_dirs(directory: Path) -> None:
    """Create `directory` and any missing parents as owner-only (0700): whoever may write
    in the store could swap a key or a live/ link."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def server_id(directory_url: str) -> str:
    """A directory name for a CA: its URL without scheme, made filesystem-safe."""
    bare = directory_url.split("://", 1)[-1]
    return _SAFE.sub("_", bare).strip("_")


@dataclass(frozen=True)
class LiveCertificate:
    name: str
    directory: Path

    @property
    def fullchain(self) -> Path:
        return self.directory / "fullchain.pem"

    @property
    def privkey(self) -> Path:
        return self.directory / "privkey.pem"

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.directory / "cert.pem").read_bytes())


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    # --- accounts ---

    def account_dir(self, directory_url: str) -> Path:
        return self.root / "accounts" / server_id(directory_url)

    def load_account(self, directory_url: str) -> tuple[PrivateKey, dict[str, Any]] | None:
        folder = self.account_dir(directory_url)
        key_path, meta_path = folder / "account.key", folder / "account.json"
        if not key_path.exists():
            return None
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return load_private_key(key_path.read_bytes()), meta

    def account_meta(self, directory_url: str) -> dict[str, Any] | None:
        path = self.account_dir(directory_url) / "account.json"
        return dict(json.loads(path.read_text())) if path.exists() else None

    def accounts(self) -> list[dict[str, Any]]:
        """The stored accounts' metadata (each has "directory"), one per CA."""
        folder = self.root / "accounts"
        found = [p / "account.json" for p in folder.iterdir()] if folder.exists() else []
        return [dict(json.loads(p.read_text())) for p in sorted(found) if p.exists()]

    def save_account_key(self, directory_url: str, key: PrivateKey) -> None:
        write_atomic(self.account_dir(directory_url) / "account.key", private_key_pem(key), 0o600)

    def save_account_meta(self, directory_url: str, meta: dict[str, Any]) -> None:
        data = json.dumps(meta, indent=2, sort_keys=True).encode()
        write_atomic(self.account_dir(directory_url) / "account.json", data, 0o600)

    def forget_account(self, directory_url: str) -> None:
        folder = self.account_dir(directory_url)
        for name in ("account.json", "account.key"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()

    # --- certificates ---

    def live(self, name: str) -> LiveCertificate | None:
        path = self.root / "live" / name
        return LiveCertificate(name, path) if (path / "cert.pem").exists() else None

    def names(self) -> list[str]:
        live = self.root / "live"
        # ".NAME.xxxx.link" is a link a killed run made but never renamed into place.
        if not live.exists():
            return []
        return sorted(p.name for p in live.iterdir() if not p.name.startswith("."))

    def save_certificate(self, name: str, chain_pem: str, key: PrivateKey) -> LiveCertificate:
        """Write a new version completely, then point `live/NAME` at it in one rename."""
        certificates = x509.load_pem_x509_certificates(chain_pem.encode())
        if not certificates:
            raise AcmeClientError("the CA returned no certificate")
        end = "-----END CERTIFICATE-----"
        first = chain_pem.index(end) + len(end)
        cert_pem, rest = chain_pem[:first].strip() + "\n", chain_pem[first:].strip()
        archive = self.root / "archive" / name
        private_dirs(archive)
        version = 1 + max((int(p.name) for p in archive.iterdir() if p.name.isdigit()), default=0)
        folder = archive / str(version)
        folder.mkdir(mode=0o700)
        write_atomic(folder / "privkey.pem", private_key_pem(key), 0o600)
        write_atomic(folder / "cert.pem", cert_pem.encode())
        write_atomic(folder / "chain.pem", (rest + "\n").encode() if rest else b"")
        write_atomic(folder / "fullchain.pem", (cert_pem + (rest + "\n" if rest else "")).encode())
        live = self.root / "live" / name
        private_dirs(live.parent)
        link_tmp = live.with_name(f".{name}.{secrets.token_hex(4)}.link")
        os.symlink(os.path.relpath(folder, live.parent), link_tmp)
        os.replace(link_tmp, live)
        _fsync_dir(live.parent)
        return LiveCertificate(name, live)

    def current_key(self, name: str) -> PrivateKey | None:
        live = self.live(name)
        return load_private_key(live.privkey.read_bytes()) if live else None

    # --- renewal configuration ---

    def save_renewal(self, name: str, config: dict[str, Any]) -> None:
        data = json.dumps(config, indent=2, sort_keys=True).encode()
        write_atomic(self.root / "renewal" / f"{name}.json", data, 0o600)

    def load_renewal(self, name: str) -> dict[str, Any] | None:
        path = self.root / "renewal" / f"{name}.json"
        return dict(json.loads(path.read_text())) if path.exists() else None

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold NAME's lock for the block; a second run on NAME fails fast, it never waits."""
        path = self.root / "locks" / f"{name}.lock"
        private_dirs(path.parent)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as err:
                raise AcmeClientError(f"another certsmith run is working on {name}") from err
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
