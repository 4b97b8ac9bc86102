"""The driver's end of the bus: one DEALER socket, owned by the main thread only.

ZeroMQ sockets are not thread-safe, so job threads never touch the socket: they ``post`` encoded
frames to a queue and poke a pipe, and the main thread's poll loop wakes on either the socket or the
pipe. That keeps the outbound path free of polling delays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import time
from collections.abc import Callable

import zmq

from driver.protocol import (
    DriverHeartbeat,
    Hello,
    Message,
    ProtocolError,
    Rejected,
    Welcome,
    decode,
    encode,
)

log = logging.getLogger("driver.link")


class LinkError(Exception):
    pass


class ServerLink:
    def __init__(self, endpoint: str, context_id: str, token: str) -> None:
        self._endpoint = endpoint
        self._context_id = context_id
        self._token = token
        self._zmq = zmq.Context()
        self._socket = self._zmq.socket(zmq.DEALER)
        # Frames still queued at exit get this long to leave (the last results, DriverStopping).
        self._socket.setsockopt(zmq.LINGER, 3000)
        self._socket.connect(endpoint)
        self._outbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._last_heard = time.monotonic()
        self._last_sent = 0.0
        self._stopping = False
        self.welcome: Welcome | None = None

    def handshake(self, timeout_s: float) -> Welcome:
        self._send_now(Hello(context_id=self._context_id, token=self._token, pid=os.getpid()))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._socket.poll(int(max(deadline - time.monotonic(), 0) * 1000) + 1):
                continue
            message = self._receive()
            if isinstance(message, Welcome):
                self.welcome = message
                self._last_heard = time.monotonic()
                return message
            if isinstance(message, Rejected):
                raise LinkError(f"server rejected this driver: {message.reason}")
        raise LinkError(f"no answer from the server at {self._endpoint} within {timeout_s:.0f} s")

    def post(self, message: Message) -> None:
        """Send from any thread."""
        self._outbox.put(encode(message))
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups: one is enough
            os.write(self._wake_write, b"\0")

    def _send_now(self, message: Message) -> None:
        self._socket.send(encode(message))
        self._last_sent = time.monotonic()

    def _receive(self) -> Message | None:
        frame = self._socket.recv()
        try:
            return decode(frame)
        except ProtocolError as error:
            log.warning("dropped a frame from the server: %s", error)
            return None

    def stop_serving(self) -> None:
        self._stopping = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def wake(self) -> None:
        """Make the serve loop run its ``tick`` soon (from any thread)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def serve(
        self,
        handle: Callable[[Message], None],
        running_job_ids: Callable[[], list[str]],
        tick: Callable[[float], float | None] = lambda now: None,
    ) -> str:
        """Dispatch server messages until ``stop_serving`` or server silence; returns why it ended.

        ``tick(now)`` runs on every turn of the loop and returns when it wants the next turn."""
        assert self.welcome is not None
        interval_s = self.welcome.heartbeat_interval_s
        grace_s = self.welcome.server_silence_grace_s
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        timeout_s = interval_s
        while not self._stopping:
            events = dict(poller.poll(max(1, int(timeout_s * 1000))))
            if self._wake_read in events:
                self._drain_wakeups()
            if self._socket in events:
                self._receive_all(handle)
            now = time.monotonic()
            due_s = tick(now)
            timeout_s = interval_s if due_s is None else min(interval_s, due_s)
            self._flush_outbox()
            if now - self._last_sent >= interval_s:
                self._send_now(DriverHeartbeat(running_job_ids=running_job_ids()))
            if now - self._last_heard > grace_s:
                return f"server silent for {now - self._last_heard:.0f} s"
        self._flush_outbox()
        return "stop requested"

    def _receive_all(self, handle: Callable[[Message], None]) -> None:
        while True:
            try:
                frame = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._last_heard = time.monotonic()
            try:
                message = decode(frame)
            except ProtocolError as error:
                log.warning("dropped a frame from the server: %s", error)
                continue
            handle(message)

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _flush_outbox(self) -> None:
        while True:
            try:
                frame = self._outbox.get_nowait()
            except queue.Empty:
                return
            self._socket.send(frame)
            self._last_sent = time.monotonic()

    def close(self) -> None:
        self._flush_outbox()
        self._socket.close()
        self._zmq.term()
        os.close(self._wake_read)
        os.close(self._wake_write)
