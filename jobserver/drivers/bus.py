"""The server's end of the driver connection: one ZeroMQ ROUTER socket, owned by one task.

Drivers connect (DEALER) and are addressed by the identity ZeroMQ gives each connection. The bus
only moves frames: it decodes them with the shared protocol module and hands every message, in
arrival order, to one handler. Who a connection is (and whether to trust it) is the handler's
business.

The socket is a plain one driven from the event loop: the loop watches its file descriptor, and
sends never wait (a full queue is an error). zmq.asyncio does the same with a future per call,
which cost more than the send itself on every job's path. ZeroMQ's fd only says that the socket
has news, and any call on the socket may consume that news; so the reader drains the socket until
it says it has no frame, and a send that finds a frame waiting wakes the reader.

With CURVE (``spark.jobserver.bus.curve``, on by default) the socket is a CURVE server: frames are
encrypted and every peer must prove it holds the secret key of a context the server expects. The
proof is checked by ZeroMQ's authentication protocol (ZAP): libzmq asks a handler on
``inproc://zeromq.zap.01`` of the same zmq.Context about each new connection, with the peer's
public key; the handler here runs on the event loop like the bus (its socket's fd is watched; an
answer is a dictionary look-up, so it never waits), accepts the keys ``authenticate`` knows and
names their context as the connection's User-Id. ZeroMQ stamps that User-Id on every frame the
connection delivers, and the bus hands it to the handler with each message: who sent a message is
what the key proves, not what the message or the routing id claims.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
import zmq

from driver.protocol import Message, ProtocolError, decode, encode
from jobserver.common import metrics
from jobserver.drivers.tokens import CurveKeyPair

log = structlog.get_logger(__name__)

# (routing id, the context the sender's CURVE key proves, or None on a plaintext bus, message)
MessageHandler = Callable[[bytes, str | None, Message], Awaitable[None]]
# The context whose driver holds this public key (32 bytes), or None for a stranger.
Authenticator = Callable[[bytes], str | None]

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq looks for the authentication handler
ZAP_DOMAIN = b"jobserver"
# Frames of one driver the server queues before it stops reading that driver (see serve).
RECEIVE_QUEUE_FRAMES = 2


class BusError(Exception):
    """A message could not be delivered (the peer is gone)."""


class Bus:
    def __init__(
        self,
        *,
        bind_address: str,
        port: int,
        advertised_host: str,
        port_file: Path | None = None,
        max_frame_bytes: int = 64 * 1024 * 1024,
        curve_keys: CurveKeyPair | None = None,
    ) -> None:
        """``max_frame_bytes``: a peer that sends a larger frame is disconnected, unread.
        ``curve_keys``: the server's long-term CURVE keys; None for a plaintext bus."""
        self._bind_address = "*" if bind_address in ("0.0.0.0", "") else bind_address
        self._requested_port = port
        # With port 0, the port picked last time is remembered here and taken again if it is
        # free: drivers that outlived a server crash reconnect to the address they know.
        self._port_file = port_file
        self._advertised_host = advertised_host
        self._max_frame_bytes = max_frame_bytes
        self._curve_keys = curve_keys
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] | None = None
        self._zap: zmq.Socket[bytes] | None = None
        self._zap_fd: int | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._readable = asyncio.Event()  # the socket may have a frame to read
        self._fd: int | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The address drivers connect to."""
        return f"tcp://{self._advertised_host}:{self.port}"

    @property
    def curve_public_key(self) -> bytes | None:
        """The server's public key (Z85) drivers must trust; None on a plaintext bus."""
        return None if self._curve_keys is None else self._curve_keys.public

    async def start(self, handler: MessageHandler, authenticate: Authenticator) -> None:
        """Serve: every message goes to ``handler``, one at a time, in arrival order. With CURVE,
        only peers whose public key ``authenticate`` attributes to a context may connect."""
        if self._curve_keys is not None:
            # Before the bind: with no handler listening, libzmq would let any CURVE client in.
            self._start_authentication(authenticate)
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        # Fail loudly instead of silently dropping frames addressed to a vanished driver.
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A driver reconnecting after a network blip gets the same identity slot back. With CURVE,
        # the new connection must hold a context's key, and the routing id it takes over is a
        # secret that never crosses the network in the clear; a takeover by another context's
        # driver shows in the User-Id of its first message, which the handler refuses.
        socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        socket.setsockopt(zmq.MAXMSGSIZE, self._max_frame_bytes)
        # Frames of one driver queued here before the handler takes them: beyond this ZeroMQ stops
        # reading that driver's connection and the rest wait in the driver (TCP's own flow
        # control). The default, 1000, would let a driver sending a large result park up to a
        # thousand 1 MiB chunks in the server's memory while each is spooled.
        socket.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE_FRAMES)
        if self._curve_keys is not None:
            socket.setsockopt(zmq.CURVE_SERVER, 1)
            socket.setsockopt(zmq.CURVE_SECRETKEY, self._curve_keys.secret)
            socket.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        address = f"tcp://{self._bind_address}"
        if self._requested_port:
            socket.bind(f"{address}:{self._requested_port}")
            self.port = self._requested_port
        else:
            self.port = self._bind_remembered_port(socket, address) or socket.bind_to_random_port(address)
            if self._port_file is not None:
                self._port_file.write_text(f"{self.port}\n")
        self._socket = socket
        self._fd = int(socket.getsockopt(zmq.FD))
        asyncio.get_running_loop().add_reader(self._fd, self._on_fd_readable)
        self._receiver = asyncio.create_task(self._receive(handler), name="bus-receiver")
        log.info("bus_started", endpoint=self.endpoint, curve=self._curve_keys is not None)

    # --- authentication (ZAP, RFC 27) -------------------------------------------------------------

    def _start_authentication(self, authenticate: Authenticator) -> None:
        # A ROUTER rather than ZAP's usual REP: no send/receive lock-step to get stuck in.
        zap = self._context.socket(zmq.ROUTER)
        zap.setsockopt(zmq.LINGER, 0)
        zap.bind(ZAP_ENDPOINT)
        self._zap = zap
        self._zap_fd = int(zap.getsockopt(zmq.FD))
        asyncio.get_running_loop().add_reader(self._zap_fd, self._answer_zap_requests, authenticate)

    def _answer_zap_requests(self, authenticate: Authenticator) -> None:
        # Until a receive finds nothing: that also consumes the fd's news, as on the bus.
        assert self._zap is not None
        while True:
            try:
                request = self._zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            reply = self._zap_reply(request, authenticate)
            if reply is not None:
                try:
                    self._zap.send_multipart(reply, zmq.NOBLOCK)
                except zmq.ZMQError as error:  # libzmq gave up on that handshake meanwhile
                    log.warning("bus_authentication_unanswered", error=str(error))

    @staticmethod
    def _zap_reply(request: list[bytes], authenticate: Authenticator) -> list[bytes] | None:
        # [peer, b"", version, request id, domain, address, routing id, mechanism, credentials…]
        if len(request) < 8 or request[1] != b"":
            log.warning("bus_authentication_request_malformed", frames=len(request))
            return None
        peer, delimiter, version, request_id, _domain, address, _identity, mechanism = request[:8]
        credentials = request[8:]
        context_id = None
        if mechanism == b"CURVE" and len(credentials) == 1:
            try:
                context_id = authenticate(credentials[0])
            except Exception:
                log.exception("bus_authentication_failed")
        answer = [peer, delimiter, version, request_id]
        if context_id is None:
            # Nobody the server expects: a stranger, a driver whose context ended, or a key
            # another server issued. The handshake fails; nothing of theirs reaches the handler.
            log.warning("bus_peer_refused", address=address.decode("utf-8", "replace"))
            return [*answer, b"400", b"unknown key", b"", b""]
        return [*answer, b"200", b"OK", context_id.encode(), b""]

    def _bind_remembered_port(self, socket: zmq.Socket[bytes], address: str) -> int:
        if self._port_file is None:
            return 0
        try:
            port = int(self._port_file.read_text().strip())
            socket.bind(f"{address}:{port}")
        except (OSError, ValueError, zmq.ZMQError):
            return 0
        return port

    def _on_fd_readable(self) -> None:
        # Reading EVENTS lets ZeroMQ take in its news, which also drains the fd: without that the
        # loop would call this on every turn while the receiver is busy with a message.
        if self._socket is not None and self._frame_waiting():
            self._readable.set()

    def _frame_waiting(self) -> bool:
        assert self._socket is not None
        return bool(int(self._socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN)

    async def _receive(self, handler: MessageHandler) -> None:
        while True:
            if not self._frame_waiting():
                self._readable.clear()
                await self._readable.wait()
                continue
            incoming = self._read()
            if incoming is None:
                continue
            identity, peer, message = incoming
            try:
                await handler(identity, peer, message)
            except Exception:
                log.exception("bus_message_handling_failed", message_type=message.TYPE)
            # Let go of it while waiting for the next: a large result's chunk is a view of its
            # frame, which goes with it.
            del incoming, message

    def _read(self) -> tuple[bytes, str | None, Message] | None:
        """The next frame's sender (routing id and, with CURVE, the context its key proves) and
        message, if a frame is there and is one."""
        assert self._socket is not None
        try:
            identity = self._socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if not self._socket.getsockopt(zmq.RCVMORE):
            log.warning("bus_frame_dropped", reason="unexpected frame count", frames=1)
            return None
        # The payload as a zmq.Frame: its User-Id is the context the sender's key proves.
        payload = self._socket.recv(copy=False)
        if self._socket.getsockopt(zmq.RCVMORE):
            self._drop_rest_of_message()
            return None
        peer = None
        if self._curve_keys is not None:
            try:
                peer = str(payload.get("User-Id"))
            except zmq.ZMQError:  # cannot be: every CURVE connection got one from the handler
                log.warning("bus_frame_dropped", reason="no authenticated sender")
                return None
        try:
            message = decode(payload.buffer)
        except ProtocolError as error:
            log.warning("bus_frame_dropped", reason=str(error))
            return None
        metrics.bus_message("in", message.TYPE)
        return identity, peer, message

    def _drop_rest_of_message(self) -> None:
        assert self._socket is not None
        frames = 2
        while self._socket.getsockopt(zmq.RCVMORE):
            self._socket.recv()
            frames += 1
        log.warning("bus_frame_dropped", reason="unexpected frame count", frames=frames)

    def send(self, identity: bytes, message: Message) -> None:
        """Queue the message for the peer; never waits (ZeroMQ's queue full is a BusError)."""
        if self._socket is None:
            raise BusError("the bus is not running")
        try:
            self._socket.send_multipart([identity, encode(message)], flags=zmq.NOBLOCK)
            metrics.bus_message("out", message.TYPE)
        except zmq.ZMQError as error:
            raise BusError(f"cannot deliver {message.TYPE}: {error}") from error
        finally:
            # The send may have taken in the news of a frame that the reader has not seen.
            with contextlib.suppress(zmq.ZMQError):
                if self._frame_waiting():
                    self._readable.set()

    async def close(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        for fd in (self._fd, self._zap_fd):
            if fd is not None:
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    asyncio.get_running_loop().remove_reader(fd)
        self._fd = self._zap_fd = None
        for socket in (self._socket, self._zap):
            if socket is not None:
                socket.close(linger=0)
        self._socket = self._zap = None
        self._context.term()
