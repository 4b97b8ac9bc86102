"""What drivers prove themselves with, checkable by a server that did not issue it.

Everything derives from one key (``key-file``, by default ``<work-dir>/server.key``, created on
first start, readable by the server's user only; servers sharing a database share it):

* a token is ``<nonce>.<HMAC-SHA256(key, context id + nonce)>``. The server that launched a driver
  compares the token it issued; a server restarted on the same work dir checks the HMAC;
* the bus's CURVE keys: the server's long-term secret key is HMAC-SHA256(key, "curve-server"),
  a context's driver's is HMAC-SHA256(key, "curve:" + context id) (any 32 bytes are a Curve25519
  secret key). A restarted server so knows the server key its drivers trust and the public key of
  every context it recovers from the store, with no key stored but ``server.key``.

So drivers that outlived a crash can rejoin the next server, or a peer holding the same key that
adopted their contexts, and nobody else can pose as them. Peers sign the requests they forward to
each other with a key derived from it too (``peer_signing_key``).
They get their token and keys in a secrets file (``write_secrets_file``), never on a command line.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from driver.protocol import DriverSecrets

KEY_FILE = "server.key"


def load_key(path: Path) -> bytes:
    """The key in ``path`` (``key-file``; by default ``<work-dir>/server.key``), created
    (atomically, mode 0600) when there is none."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    # A temporary file of a random name, created exclusively and readable by this user alone,
    # then linked into place: another server starting at once keeps its own, and we take theirs.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(key.hex())
    try:
        os.link(temporary, path)  # fails if another server created it first: use theirs
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    return bytes.fromhex(path.read_text().strip())


def fingerprint(key: bytes) -> str:
    """Tells which servers hold the same key (stored with each server's heartbeat); reveals nothing
    of the key."""
    return hmac.new(key, b"fingerprint", hashlib.sha256).hexdigest()[:32]


def peer_signing_key(key: bytes) -> bytes:
    """What the servers sharing a key sign the requests they forward to each other with."""
    return hmac.new(key, b"peer-requests", hashlib.sha256).digest()


def issue(key: bytes, context_id: str) -> str:
    nonce = secrets.token_urlsafe(12)
    return f"{nonce}.{_mac(key, context_id, nonce)}"


def verify(key: bytes, context_id: str, token: str) -> bool:
    nonce, _, mac = token.partition(".")
    return bool(nonce and mac) and hmac.compare_digest(mac, _mac(key, context_id, nonce))


def _mac(key: bytes, context_id: str, nonce: str) -> str:
    return hmac.new(key, f"{context_id}:{nonce}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class CurveKeyPair:
    """Z85-encoded, as ZeroMQ's socket options and ``zmq.curve_public`` take them."""

    public: bytes
    secret: bytes

    @property
    def public_raw(self) -> bytes:
        """The 32 bytes a ZAP request carries as the peer's credentials."""
        return z85.decode(self.public)


def curve_server_keys(key: bytes) -> CurveKeyPair:
    return _curve_keys(key, "curve-server")


def curve_context_keys(key: bytes, context_id: str) -> CurveKeyPair:
    return _curve_keys(key, f"curve:{context_id}")


def _curve_keys(key: bytes, label: str) -> CurveKeyPair:
    secret = z85.encode(hmac.new(key, label.encode(), hashlib.sha256).digest())
    return CurveKeyPair(public=zmq.curve_public(secret), secret=secret)


def write_secrets_file(folder: Path, secrets: DriverSecrets) -> Path:
    """A new file in ``folder`` holding ``secrets``, created exclusively and readable by this user
    alone (``mkstemp``); its name is random and not secret."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, path = tempfile.mkstemp(dir=folder, prefix="driver-secrets-", suffix=".json")
    with os.fdopen(descriptor, "w") as secrets_file:
        secrets_file.write(secrets.to_json())
    return Path(path)
