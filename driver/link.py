"""The driver's end of the bus: one DEALER socket, owned by the main thread only.

ZeroMQ sockets are not thread-safe, so every use of the socket happens under one lock. A job's
thread sends its own report (``post``) rather than handing it to the main thread: a thread wake-up
less on the path of every job. The main thread waits on the socket's file descriptor (an ordinary
fd, safe to wait on while another thread sends) and on a pipe that other threads poke. ZeroMQ's fd
is edge-triggered and any socket call may consume its edge, so whoever calls the socket checks
afterwards whether a frame is waiting and, if so, pokes the pipe so that the main thread reads it.
A frame that cannot leave at once (the queue toward an absent server is full) goes to an outbox
that the main thread drains, in order, waiting up to a second per frame as before.

A job's final report (its result chunks and JobFinished, or JobFailed, or JobKilled) is kept after
it is sent until the server acknowledges that it is stored (JobReportAck). When the server restarts,
the new one answers this driver's next frame with Reintroduce; the driver says who it is (Rejoin)
and, once welcomed, sends every report it still holds again. So no result is lost to a server
crash, and the server's compare-and-set makes a report that arrives twice count once.

Several servers on one metadata store tell their drivers each other's bus endpoints
(``ServerEndpoints``). When this driver's server has been silent for three heartbeat intervals,
the link disconnects and connects to the next endpoint (its own server's included, which may come
back), every three intervals, until one answers: a peer that adopted this driver's context answers
with Reintroduce and welcomes its Rejoin like a restarted server; one that does not hold the
context rejects the Rejoin, and the link moves on instead of stopping.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable

import zmq

from driver.protocol import (
    DriverHeartbeat,
    DriverSecrets,
    Hello,
    JobFailed,
    JobFinished,
    JobKilled,
    JobReportAck,
    JobResultChunk,
    JobResultSize,
    Message,
    ProtocolError,
    Reintroduce,
    Rejected,
    Rejoin,
    ServerEndpoints,
    Welcome,
    decode,
    encode,
)

log = logging.getLogger("driver.link")


# The messages that make up a job's final report, held until the server acknowledges it.
REPORT_TYPES = (JobResultChunk, JobResultSize, JobFinished, JobFailed, JobKilled)

# Heartbeat intervals of silence after which the link tries the next server it knows of.
FAILOVER_INTERVALS = 3


class LinkError(Exception):
    pass


class ServerLink:
    def __init__(self, endpoint: str, context_id: str, credentials: DriverSecrets) -> None:
        self._endpoint = endpoint  # the server connected to now
        self._endpoints = [endpoint]  # every server that may take this driver: the launcher's first
        self._switched_at = 0.0
        self._context_id = context_id
        self._token = credentials.token
        self._zmq = zmq.Context()
        self._socket = self._zmq.socket(zmq.DEALER)
        if credentials.curve:
            # CURVE: the server is the one holding its key (a restarted one on the same work dir
            # holds the same), and this driver proves its context with its own.
            self._socket.setsockopt(zmq.CURVE_SERVERKEY, credentials.server_public_key.encode())
            self._socket.setsockopt(zmq.CURVE_PUBLICKEY, credentials.public_key.encode())
            self._socket.setsockopt(zmq.CURVE_SECRETKEY, credentials.secret_key.encode())
        # Frames still queued at exit get this long to leave (the last results, DriverStopping).
        self._socket.setsockopt(zmq.LINGER, 3000)
        # A stable identity (after a reconnect the server still knows which driver this is) that
        # nobody else knows: the context id is public, and a peer using it could pose as us.
        self._socket.setsockopt(zmq.ROUTING_ID, b"driver-" + secrets.token_hex(16).encode())
        # With no server for a long time the queue toward it fills up: drop rather than block the
        # loop that watches for the server's silence (held reports are sent again on rejoin).
        self._socket.setsockopt(zmq.SNDTIMEO, 1000)
        self._socket.connect(endpoint)
        self._socket_fd = int(self._socket.getsockopt(zmq.FD))
        self._lock = threading.Lock()  # the socket, the outbox and the held reports
        # Frames that could not leave at once: (frame, job id when part of a job's final report)
        self._outbox: collections.deque[tuple[bytes, str | None]] = collections.deque()
        self._held: dict[str, list[bytes]] = {}  # sent reports not yet acknowledged
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
        """Send from any thread: at once when nothing is waiting ahead of it, else via the outbox."""
        frame = encode(message)
        held_as = message.job_id if isinstance(message, REPORT_TYPES) else None
        with self._lock:
            sent = not self._outbox and self._try_send(frame)
            if sent:
                if held_as is not None:
                    self._held.setdefault(held_as, []).append(frame)
                wake = self._frame_waiting()
            else:
                self._outbox.append((frame, held_as))
                wake = True
        if wake:
            self.wake()

    def _try_send(self, frame: bytes) -> bool:
        """Under the lock: send without waiting; False when the frame cannot leave now."""
        try:
            self._socket.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return False
        self._last_sent = time.monotonic()
        return True

    def _frame_waiting(self) -> bool:
        """Under the lock: a frame from the server is waiting (this also consumes the fd's edge)."""
        return bool(int(self._socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN)

    def _send_now(self, message: Message) -> None:
        with self._lock:
            self._send_frame(encode(message))

    def _send_frame(self, frame: bytes) -> None:
        """Under the lock (or before any other thread can use the socket)."""
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
        self.wake()

    def wake(self) -> None:
        """Make the serve loop run its ``tick`` soon (from any thread)."""
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups: one is enough
            os.write(self._wake_write, b"\0")

    def serve(
        self,
        handle: Callable[[Message], None],
        running_job_ids: Callable[[], list[str]],
        tick: Callable[[float], float | None] = lambda now: None,
        spark_ui: Callable[[], tuple[str, str | None]] = lambda: ("", None),
    ) -> str:
        """Dispatch server messages until ``stop_serving`` or server silence; returns why it ended.

        Acknowledgements, Reintroduce and a restarted server's Welcome are the link's own
        business; ``handle`` gets every other message.

        ``tick(now)`` runs on every turn of the loop and returns when it wants the next turn.
        ``spark_ui()`` gives the application id and web UI address ("" while Spark starts), for a
        Rejoin."""
        assert self.welcome is not None
        interval_s = self.welcome.heartbeat_interval_s
        grace_s = self.welcome.server_silence_grace_s
        poller = select.poll()
        poller.register(self._socket_fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        timeout_s = interval_s
        while not self._stopping:
            with self._lock:
                waiting = self._frame_waiting()
            poked = True
            if not waiting:
                # Woken by the socket's fd, by a poke, or by the timeout: the socket is read next
                # either way, since an edge consumed by another thread's call came with a poke.
                events = poller.poll(max(1, int(timeout_s * 1000)))
                # The pipe is read only when poked (a read of an empty pipe is a system call on
                # the way of every job the server sends); a poke after the poll makes the next
                # poll return at once.
                poked = any(fd == self._wake_read for fd, _ in events)
            if poked:
                self._drain_wakeups()
            self._receive_all(handle, running_job_ids, spark_ui)
            now = time.monotonic()
            due_s = tick(now)
            timeout_s = interval_s if due_s is None else min(interval_s, due_s)
            self._flush_outbox()
            if now - self._last_sent >= interval_s:
                self._send_now(DriverHeartbeat(running_job_ids=running_job_ids()))
            if now - self._last_heard > grace_s:
                return f"server silent for {now - self._last_heard:.0f} s"
            failover_s = FAILOVER_INTERVALS * interval_s
            if now - max(self._last_heard, self._switched_at) > failover_s and len(self._endpoints) > 1:
                self._switch_server(now)
        self._flush_outbox()
        return "stop requested"

    def _receive_all(
        self,
        handle: Callable[[Message], None],
        running_job_ids: Callable[[], list[str]],
        spark_ui: Callable[[], tuple[str, str | None]],
    ) -> None:
        frames = []
        with self._lock:
            while self._frame_waiting():
                frames.append(self._socket.recv(zmq.NOBLOCK))
        if frames:
            self._last_heard = time.monotonic()
        for frame in frames:
            try:
                message = decode(frame)
            except ProtocolError as error:
                log.warning("dropped a frame from the server: %s", error)
                continue
            if isinstance(message, JobReportAck):
                with self._lock:
                    self._held.pop(message.job_id, None)
                handle(message)
            elif isinstance(message, Reintroduce):
                self._rejoin(running_job_ids(), *spark_ui())
            elif isinstance(message, Welcome):
                self._on_welcome_back(message)
            elif isinstance(message, ServerEndpoints):
                self._endpoints = list(dict.fromkeys([self._endpoints[0], *message.endpoints]))
                log.info("servers this driver may go to: %s", " ".join(self._endpoints))
            elif isinstance(message, Rejected) and self._rejoining and len(self._endpoints) > 1:
                # This server does not hold our context (any more): another may have adopted it.
                log.info(
                    "server at %s rejected this driver (%s); trying the next", self._endpoint, message.reason
                )
                self._switch_server(time.monotonic())
            else:
                handle(message)

    def _rejoin(self, running: list[str], application_id: str, web_ui_url: str | None) -> None:
        if self._rejoining:  # one introduction per server; it answers every stray frame
            return
        self._rejoining = True
        log.info("the job server restarted; rejoining it with %d job(s) running", len(running))
        with self._lock:
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
            self._send_frame(encode(rejoin))

    def _on_welcome_back(self, welcome: Welcome) -> None:
        if not self._rejoining:
            return
        self._rejoining = False
        self.welcome = welcome
        with self._lock:
            log.info("rejoined the job server; sending %d held job report(s) again", len(self._held))
            for frames in list(self._held.values()):
                for frame in frames:
                    self._send_frame(frame)

    def _switch_server(self, now: float) -> None:
        """Leave the silent (or refusing) server for the next one known, in turn."""
        position = self._endpoints.index(self._endpoint) if self._endpoint in self._endpoints else -1
        following = self._endpoints[(position + 1) % len(self._endpoints)]
        log.warning("server at %s silent; trying the server at %s", self._endpoint, following)
        with self._lock:
            with contextlib.suppress(zmq.ZMQError):
                self._socket.disconnect(self._endpoint)
            self._socket.connect(following)
        self._endpoint = following
        self._switched_at = now
        self._rejoining = False  # the next server's Reintroduce gets a Rejoin

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _flush_outbox(self) -> None:
        with self._lock:
            while self._outbox:
                frame, held_as = self._outbox.popleft()
                self._send_frame(frame)
                if held_as is not None:
                    self._held.setdefault(held_as, []).append(frame)

    def held_job_ids(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def close(self) -> None:
        self._flush_outbox()
        self._socket.close()
        self._zmq.term()
        os.close(self._wake_read)
        os.close(self._wake_write)
