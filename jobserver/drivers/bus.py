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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
import zmq

from driver.protocol import Message, ProtocolError, decode, encode

log = structlog.get_logger(__name__)

MessageHandler = Callable[[bytes, Message], Awaitable[None]]


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
    ) -> None:
        """``max_frame_bytes``: a peer that sends a larger frame is disconnected, unread."""
        self._bind_address = "*" if bind_address in ("0.0.0.0", "") else bind_address
        self._requested_port = port
        # With port 0, the port picked last time is remembered here and taken again if it is
        # free: drivers that outlived a server crash reconnect to the address they know.
        self._port_file = port_file
        self._advertised_host = advertised_host
        self._max_frame_bytes = max_frame_bytes
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._readable = asyncio.Event()  # the socket may have a frame to read
        self._fd: int | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The address drivers connect to."""
        return f"tcp://{self._advertised_host}:{self.port}"

    async def start(self, handler: MessageHandler) -> None:
        """Serve: every message goes to ``handler``, one at a time, in arrival order."""
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        # Fail loudly instead of silently dropping frames addressed to a vanished driver.
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A driver reconnecting after a network blip gets the same identity slot back.
        socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        socket.setsockopt(zmq.MAXMSGSIZE, self._max_frame_bytes)
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
        log.info("bus_started", endpoint=self.endpoint)

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
            identity, message = incoming
            try:
                await handler(identity, message)
            except Exception:
                log.exception("bus_message_handling_failed", message_type=message.TYPE)

    def _read(self) -> tuple[bytes, Message] | None:
        """The next frame's sender and message, if a frame is there and is one."""
        assert self._socket is not None
        try:
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if len(frames) != 2:
            log.warning("bus_frame_dropped", reason="unexpected frame count", frames=len(frames))
            return None
        identity, payload = frames
        try:
            return identity, decode(payload)
        except ProtocolError as error:
            log.warning("bus_frame_dropped", reason=str(error))
            return None

    def send(self, identity: bytes, message: Message) -> None:
        """Queue the message for the peer; never waits (ZeroMQ's queue full is a BusError)."""
        if self._socket is None:
            raise BusError("the bus is not running")
        try:
            self._socket.send_multipart([identity, encode(message)], flags=zmq.NOBLOCK)
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
        if self._fd is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._context.term()
