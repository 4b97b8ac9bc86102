"""The tokens drivers prove themselves with, checkable by a server that did not issue them.

A token is ``<nonce>.<HMAC-SHA256(key, context id + nonce)>`` with a key kept in the work dir
(``server.key``, created on first start, readable by the server's user only). The server that
launched a driver compares the token it issued; a server restarted on the same work dir checks the
HMAC, so drivers that outlived a crash can rejoin it and nobody else can pose as them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

KEY_FILE = "server.key"


def load_key(work_dir: Path) -> bytes:
    """The work dir's key, created (atomically, mode 0600) when there is none."""
    path = work_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    # A temporary file of a random name, created exclusively and readable by this user alone,
    # then linked into place: another server starting at once keeps its own, and we take theirs.
    descriptor, temporary = tempfile.mkstemp(dir=work_dir, prefix=f".{KEY_FILE}.")
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(key.hex())
    try:
        os.link(temporary, path)  # fails if another server created it first: use theirs
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    return bytes.fromhex(path.read_text().strip())


def issue(key: bytes, context_id: str) -> str:
    nonce = secrets.token_urlsafe(12)
    return f"{nonce}.{_mac(key, context_id, nonce)}"


def verify(key: bytes, context_id: str, token: str) -> bool:
    nonce, _, mac = token.partition(".")
    return bool(nonce and mac) and hmac.compare_digest(mac, _mac(key, context_id, nonce))


def _mac(key: bytes, context_id: str, nonce: str) -> str:
    return hmac.new(key, f"{context_id}:{nonce}".encode(), hashlib.sha256).hexdigest()
