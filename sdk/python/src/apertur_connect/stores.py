"""Where a partner server keeps each connection's tokens.

A store maps a connection key (by default the connected project's id) to a :class:`TokenSet`. Any object
with ``get``, ``set`` and ``delete`` is a :class:`TokenStore`. A store that also has ``lock(key)`` (a
:class:`LockingTokenStore`) serialises refreshes across **processes** too; the clients always serialise
them across the threads or tasks of one process. Both matter because Apertur rotates refresh tokens and
revokes the whole authorization when a spent one is presented again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from apertur_connect.models import TokenSet

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


@runtime_checkable
class TokenStore(Protocol):
    def get(self, key: str) -> TokenSet | None: ...

    def set(self, key: str, tokens: TokenSet) -> None: ...

    def delete(self, key: str) -> None: ...


@runtime_checkable
class LockingTokenStore(TokenStore, Protocol):
    def lock(self, key: str) -> AbstractContextManager[None]:
        """Held while a refresh runs: no other process refreshes ``key`` meanwhile."""
        ...


class MemoryStore:
    """In this process only: tokens are lost on restart (fine for tests and single-process demos)."""

    def __init__(self) -> None:
        self._data: dict[str, TokenSet] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> TokenSet | None:
        with self._guard:
            return self._data.get(key)

    def set(self, key: str, tokens: TokenSet) -> None:
        with self._guard:
            self._data[key] = tokens

    def delete(self, key: str) -> None:
        with self._guard:
            self._data.pop(key, None)

    def keys(self) -> list[str]:
        with self._guard:
            return list(self._data)


def _fernet(key: str | bytes) -> Any:
    try:
        from cryptography.fernet import Fernet
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("Encrypted stores need the crypto extra: pip install 'apertur-connect[crypto]'") from exc
    return Fernet(key)


def generate_key() -> str:
    """A new Fernet key for :class:`EncryptedFileStore` or :class:`SQLAlchemyStore` (keep it in your secrets)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class EncryptedFileStore:
    """One file per connection under ``directory``, encrypted and authenticated with Fernet
    (AES-128-CBC + HMAC-SHA256), written atomically with mode 0600. ``lock()`` takes an exclusive
    ``flock`` on a side file, so several worker processes sharing the directory never refresh the same
    connection twice. Needs the ``crypto`` extra."""

    def __init__(self, directory: str | os.PathLike[str], key: str | bytes) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fernet = _fernet(key)

    def _path(self, key: str, suffix: str = ".token") -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:40] + suffix)

    def get(self, key: str) -> TokenSet | None:
        try:
            blob = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        data = json.loads(self._fernet.decrypt(blob))
        return TokenSet.from_json(data["tokens"])

    def set(self, key: str, tokens: TokenSet) -> None:
        blob: bytes = self._fernet.encrypt(json.dumps({"key": key, "tokens": tokens.to_json()}).encode())
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path(key))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        import fcntl

        with open(self._path(key, ".lock"), "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
