"""HTTP Basic against a users file: one user per line, ``name:bcrypt-hash[:group,group…]``, blank
lines and ``#`` comments ignored (``htpasswd -B`` writes such lines; ``jobserver-passwd`` too).

The file is read again when it changes (checked at most once a second), and each change starts a
new generation: logins cached under an older one are checked again, so a removed user or a changed
password takes effect at once. Checking a password is deliberately slow (bcrypt); callers run it
off the event loop.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import structlog

from jobserver.common.errors import ConfigError

log = structlog.get_logger(__name__)

_BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")
_RECHECK_S = 1.0


@functools.cache
def _dummy_hash() -> bytes:
    """Compared against when the user does not exist, so that the answer takes as long as for a
    user that does (the time would otherwise tell which names exist)."""
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=12))


@dataclass(frozen=True, slots=True)
class _User:
    password_hash: bytes
    groups: frozenset[str]


class UsersFile:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._users: dict[str, _User] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self.generation = 0
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> int:
        """The current generation, after reading the file again if it changed."""
        now = time.monotonic()
        if not force and now - self._checked_at < _RECHECK_S:
            return self.generation
        self._checked_at = now
        try:
            status = os.stat(self._path)
        except OSError as error:
            if force:
                raise ConfigError(f"cannot read users file {self._path}: {error}") from error
            log.error("users_file_unreadable", path=str(self._path), error=str(error))
            return self.generation
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
        if stamp == self._stamp:
            return self.generation
        with self._lock:
            self._users = _parse(self._path)
            self._stamp = stamp
            self.generation += 1
        log.info("users_file_read", path=str(self._path), users=len(self._users))
        return self.generation

    def check(self, name: str, password: str) -> frozenset[str] | None:
        """The user's groups when the password is right, else None. Blocks for a bcrypt check."""
        user = self._users.get(name)
        candidate = password.encode()
        if user is None:
            bcrypt.checkpw(candidate, _dummy_hash())
            return None
        try:
            matches = bcrypt.checkpw(candidate, user.password_hash)
        except ValueError:  # a password longer than bcrypt takes (72 bytes), or a malformed hash
            return None
        return user.groups if matches else None


def _parse(path: Path) -> dict[str, _User]:
    users: dict[str, _User] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, _, rest = text.partition(":")
        password_hash, _, groups = rest.partition(":")
        encoded = password_hash.encode()
        if not name or not encoded.startswith(_BCRYPT_PREFIXES):
            log.warning("users_file_line_ignored", path=str(path), line=number, reason="not name:bcrypt-hash")
            continue
        users[name] = _User(encoded, frozenset(group.strip() for group in groups.split(",") if group.strip()))
    return users


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
