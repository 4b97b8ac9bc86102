"""The driver's end of the bus: one DEALER socket, owned by the main thread only.

ZeroMQ sockets are not thread-safe, so job threads never touch the socket: they ``post`` encoded
frames to a queue and poke a pipe, and the main thread's poll loop wakes on either the socket or the
pipe. That keeps the outbound path free of polling delays.

A job's final report (its result chunks and JobFinished, or JobFailed, or JobKilled) is kept after
it is sent until the server acknowledges that it is stored (JobReportAck). When the server restarts,
the new one answers this driver's next frame with Reintroduce; the driver says who it is (Rejoin)
and, once welcomed, sends every report it still holds again. So no result is lost to a server
crash, and the server's compare-and-set makes a report that arrives twice count once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import time
from collections.abc import Callable

import zmq

from driver.protocol import (
    DriverHeartbeat,
    Hello,
    JobFailed,
    JobFinished,
    JobKilled,
    JobReportAck,
    JobResultChunk,
    Message,
    ProtocolError,
    Reintroduce,
    Rejected,
    Rejoin,
    Welcome,
    decode,
    encode,
)

log = logging.getLogger("driver.link")


# The messages that make up a job's final report, held until the server acknowledges it.
REPORT_TYPES = (JobResultChunk, JobFinished, JobFailed, JobKilled)


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
        # A stable identity: after a reconnect the server still knows which driver this is.
        self._socket.setsockopt(zmq.ROUTING_ID, context_id.encode())
        # With no server for a long time the queue toward it fills up: drop rather than block the
        # loop that watches for the server's silence (held reports are sent again on rejoin).
        self._socket.setsockopt(zmq.SNDTIMEO, 1000)
        self._socket.connect(endpoint)
        # (frame, job id when the frame is part of a job's final report)
        self._outbox: queue.SimpleQueue[tuple[bytes, str | None]] = queue.SimpleQueue()
        self._held: dict[str, list[bytes]] = {}  # sent reports not yet acknowledged, main thread only
        self._rejoining = False
        self.pid = os.getpid()
        self.pgid = os.getpgid(0)
        self.host = socket.gethostname()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._last_heard = time.monotonic()
        self._last_sent = 0.0
        self._stopping = False
        self.welcome: Welcome | None = None

    def handshake(self, timeout_s: float) -> Welcome:
        hello = Hello(
            context_id=self._context_id, token=self._token, pid=self.pid, pgid=self.pgid, host=self.host
        )
        self._send_now(hello)
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
        held_as = message.job_id if isinstance(message, REPORT_TYPES) else None
        self._outbox.put((encode(message), held_as))
        if isinstance(message, JobFinished | JobFailed | JobKilled):
            log.info("job %s ended: %s", message.job_id, message.TYPE)
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups: one is enough
            os.write(self._wake_write, b"\0")

    def _send_now(self, message: Message) -> None:
        self._send_frame(encode(message))

    def _send_frame(self, frame: bytes) -> None:
        try:
            self._socket.send(frame)
        except zmq.Again:
            log.debug("no server to send to; frame dropped")
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
        spark_ui: Callable[[], tuple[str, str | None]] = lambda: ("", None),
    ) -> str:
        """Dispatch server messages until ``stop_serving`` or server silence; returns why it ended.

        ``tick(now)`` runs on every turn of the loop and returns when it wants the next turn.
        ``spark_ui()`` gives the application id and web UI address ("" while Spark starts), for a
        Rejoin."""
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
                self._receive_all(handle, running_job_ids, spark_ui)
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

    def _receive_all(
        self,
        handle: Callable[[Message], None],
        running_job_ids: Callable[[], list[str]],
        spark_ui: Callable[[], tuple[str, str | None]],
    ) -> None:
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
            if isinstance(message, JobReportAck):
                self._held.pop(message.job_id, None)
            elif isinstance(message, Reintroduce):
                self._rejoin(running_job_ids(), *spark_ui())
            elif isinstance(message, Welcome):
                self._on_welcome_back(message)
            else:
                handle(message)

    def _rejoin(self, running: list[str], application_id: str, web_ui_url: str | None) -> None:
        if self._rejoining:  # one introduction per server; it answers every stray frame
            return
        self._rejoining = True
        log.info("the job server restarted; rejoining it with %d job(s) running", len(running))
        rejoin = Rejoin(
            context_id=self._context_id,
            token=self._token,
            pid=self.pid,
            pgid=self.pgid,
            host=self.host,
            running_job_ids=running,
            held_job_ids=list(self._held),
            application_id=application_id,
            web_ui_url=web_ui_url,
        )
        self._send_now(rejoin)

    def _on_welcome_back(self, welcome: Welcome) -> None:
        if not self._rejoining:
            return
        self._rejoining = False
        self.welcome = welcome
        log.info("rejoined the job server; sending %d held job report(s) again", len(self._held))
        for frames in list(self._held.values()):
            for frame in frames:
                self._send_frame(frame)

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _flush_outbox(self) -> None:
        while True:
            try:
                frame, held_as = self._outbox.get_nowait()
            except queue.Empty:
                return
            self._send_frame(frame)
            if held_as is not None:
                self._held.setdefault(held_as, []).append(frame)

    def held_job_ids(self) -> list[str]:
        return list(self._held)

    def close(self) -> None:
        self._flush_outbox()
        self._socket.close()
        self._zmq.term()
        os.close(self._wake_read)
        os.close(self._wake_write)
