"""The server's bus over real ZeroMQ sockets: every message reaches the handler once, in arrival
order and one at a time; a frame that is not a message is dropped without stopping the bus; a
message for a peer that is not there is an error, not a silent drop. With CURVE, only peers holding
a key the server expects connect, each message comes with the context its sender's key proves,
and nothing crosses the network in the clear."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog
import zmq

from driver.protocol import JobFinished, Message, ServerHeartbeat, encode
from jobserver.drivers import tokens
from jobserver.drivers.bus import Bus, BusError
from tests.support import wait_until

KEY = bytes(range(32))  # a work dir's server.key
SERVER_KEYS = tokens.curve_server_keys(KEY)

SLOW = {"m2", "m5"}  # their handling waits, so that later messages arrive while it is busy


async def test_messages_are_handled_once_in_order_and_one_at_a_time() -> None:
    bus = Bus(bind_address="127.0.0.1", port=0, advertised_host="127.0.0.1")
    events: list[tuple[str, str]] = []

    async def handler(identity: bytes, peer: str | None, message: Message) -> None:
        assert isinstance(message, JobFinished) and identity == b"driver-1" and peer is None
        events.append(("start", message.job_id))
        if message.job_id in SLOW:
            await asyncio.sleep(0.05)  # the handler's own work, during which more arrive
        events.append(("end", message.job_id))

    await bus.start(handler, lambda public_key: None)  # a plaintext bus asks nobody
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.ROUTING_ID, b"driver-1")
    try:
        dealer.connect(bus.endpoint)
        names = [f"m{number}" for number in range(8)]
        for name in names:
            dealer.send(encode(JobFinished(job_id=name, result=b"1")))
            if name == "m3":
                dealer.send(b"not a message")  # dropped; the bus goes on
        await wait_until(lambda: _now(("end", "m7") in events), timeout_s=10, interval_s=0.005)
        assert events == [(kind, name) for name in names for kind in ("start", "end")]

        bus.send(b"driver-1", ServerHeartbeat())  # the peer is there: delivered
        assert await asyncio.to_thread(dealer.poll, 5000)
        with pytest.raises(BusError):
            bus.send(b"nobody", ServerHeartbeat())
    finally:
        dealer.close()
        context.term()
        await bus.close()


async def _now(value: bool) -> bool:
    return value


Received = list[tuple[bytes, str | None, Message]]


@contextlib.asynccontextmanager
async def curve_bus(expected: dict[str, str], received: Received) -> AsyncIterator[Bus]:
    """A CURVE bus that expects the drivers of the contexts in ``expected`` (id → public key)."""
    bus = Bus(bind_address="127.0.0.1", port=0, advertised_host="127.0.0.1", curve_keys=SERVER_KEYS)
    by_key = {tokens.curve_context_keys(KEY, context_id).public_raw: context_id for context_id in expected}

    async def handler(identity: bytes, peer: str | None, message: Message) -> None:
        received.append((identity, peer, message))

    await bus.start(handler, by_key.get)
    try:
        yield bus
    finally:
        await bus.close()


class Peers:
    """Driver-side sockets of the test's own zmq.Context, all closed at the end."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sockets: list[zmq.Socket[bytes]] = []

    def dealer(self, keys: tokens.CurveKeyPair | None, routing_id: bytes = b"") -> zmq.Socket[bytes]:
        """A DEALER with ``keys`` (trusting the server's key), or plaintext with None."""
        socket = self.context.socket(zmq.DEALER)
        self.sockets.append(socket)
        socket.setsockopt(zmq.LINGER, 0)
        if routing_id:
            socket.setsockopt(zmq.ROUTING_ID, routing_id)
        if keys is not None:
            socket.setsockopt(zmq.CURVE_SERVERKEY, SERVER_KEYS.public)
            socket.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
            socket.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
        socket.connect(self.endpoint)
        return socket

    def close(self) -> None:
        for socket in self.sockets:
            socket.close(linger=0)
        self.context.term()


@contextlib.contextmanager
def peers(endpoint: str) -> Iterator[Peers]:
    peers = Peers(endpoint)
    try:
        yield peers
    finally:
        peers.close()


def keys_of(context_id: str, key: bytes = KEY) -> tokens.CurveKeyPair:
    return tokens.curve_context_keys(key, context_id)


async def test_each_message_comes_with_the_context_its_senders_key_proves() -> None:
    received: Received = []
    async with curve_bus({"ctx-a": "", "ctx-b": ""}, received) as bus:
        with peers(bus.endpoint) as drivers:
            a = drivers.dealer(keys_of("ctx-a"), b"route-a")
            b = drivers.dealer(keys_of("ctx-b"), b"route-b")
            a.send(encode(JobFinished(job_id="from-a", result=b"1")))
            b.send(encode(JobFinished(job_id="from-b", result=b"2")))
            await wait_until(lambda: _now(len(received) == 2), timeout_s=10, interval_s=0.005)
            assert sorted((identity, peer) for identity, peer, _ in received) == [
                (b"route-a", "ctx-a"),
                (b"route-b", "ctx-b"),
            ]
            bus.send(b"route-a", ServerHeartbeat())  # and the way back works
            assert await asyncio.to_thread(a.poll, 5000)

            # A's driver takes over B's routing id (ROUTER_HANDOVER): what it sends is still A's.
            usurper = drivers.dealer(keys_of("ctx-a"), b"route-b")
            usurper.send(encode(JobFinished(job_id="usurped", result=b"3")))
            await wait_until(lambda: _now(len(received) == 3), timeout_s=10, interval_s=0.005)
            assert received[-1][:2] == (b"route-b", "ctx-a")


async def test_a_peer_without_an_expected_key_never_reaches_the_handler() -> None:
    received: Received = []
    async with curve_bus({"ctx-a": ""}, received) as bus:
        with peers(bus.endpoint) as drivers:
            # A context the server does not expect (ended, or never launched by it), another work
            # dir's key for an expected one, and a plaintext peer: none gets a frame through.
            strangers = [
                drivers.dealer(keys_of("ctx-gone")),
                drivers.dealer(keys_of("ctx-a", b"other key of 32 bytes, not ours!")),
                drivers.dealer(None),
            ]
            with structlog.testing.capture_logs() as logs:
                for stranger in strangers:
                    stranger.send(encode(JobFinished(job_id="forged", result=b"0")), zmq.NOBLOCK)

                async def both_keys_refused() -> bool:
                    return sum(entry["event"] == "bus_peer_refused" for entry in logs) >= 2

                await wait_until(both_keys_refused, timeout_s=10, interval_s=0.005)
            # The expected driver, connecting after them, is handled; the strangers are not.
            a = drivers.dealer(keys_of("ctx-a"), b"route-a")
            a.send(encode(JobFinished(job_id="real", result=b"1")))
            assert await asyncio.to_thread(a.poll, 0) == 0
            await wait_until(lambda: _now(len(received) >= 1), timeout_s=10, interval_s=0.005)
            bus.send(b"route-a", ServerHeartbeat())  # a round trip: anything sent before is in
            assert await asyncio.to_thread(a.poll, 5000)
            assert [(peer, message) for _, peer, message in received] == [
                ("ctx-a", JobFinished(job_id="real", result=b"1"))
            ]


class TcpRecorder:
    """A TCP proxy between drivers and the bus that keeps every byte it forwards."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.captured = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._proxy, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _proxy(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    self.captured += data
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.mark.parametrize("curve", [True, False])
async def test_with_curve_nothing_crosses_the_network_in_the_clear(curve: bool) -> None:
    marker = b"plaintext-marker-5b1e"
    received: Received = []
    keys = keys_of("ctx-a")
    bus = Bus(
        bind_address="127.0.0.1",
        port=0,
        advertised_host="127.0.0.1",
        curve_keys=SERVER_KEYS if curve else None,
    )

    async def handler(identity: bytes, peer: str | None, message: Message) -> None:
        received.append((identity, peer, message))

    await bus.start(handler, {keys.public_raw: "ctx-a"}.get)
    recorder = TcpRecorder(bus.port)
    await recorder.start()
    try:
        with peers(f"tcp://127.0.0.1:{recorder.port}") as drivers:
            dealer = drivers.dealer(keys if curve else None, b"route-a")
            dealer.send(encode(JobFinished(job_id="job-1", result=b'"' + marker + b'"')))
            await wait_until(lambda: _now(len(received) == 1), timeout_s=10, interval_s=0.005)
            bus.send(b"route-a", JobFinished(job_id="job-2", result=marker))  # and the other way
            assert await asyncio.to_thread(dealer.poll, 5000)
            assert received[0][1] == ("ctx-a" if curve else None)
            wire = bytes(recorder.captured)
            assert (marker in wire) is not curve  # plaintext shows it: the recorder does see frames
            assert (b"route-a" in wire) is not curve  # nor is the secret routing id readable
    finally:
        await recorder.close()
        await bus.close()
