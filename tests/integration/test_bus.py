"""The server's bus over real ZeroMQ sockets: every message reaches the handler once, in arrival
order and one at a time; a frame that is not a message is dropped without stopping the bus; a
message for a peer that is not there is an error, not a silent drop."""

from __future__ import annotations

import asyncio

import pytest
import zmq

from driver.protocol import JobFinished, Message, ServerHeartbeat, encode
from jobserver.drivers.bus import Bus, BusError
from tests.support import wait_until

SLOW = {"m2", "m5"}  # their handling waits, so that later messages arrive while it is busy


async def test_messages_are_handled_once_in_order_and_one_at_a_time() -> None:
    bus = Bus(bind_address="127.0.0.1", port=0, advertised_host="127.0.0.1")
    events: list[tuple[str, str]] = []

    async def handler(identity: bytes, message: Message) -> None:
        assert isinstance(message, JobFinished) and identity == b"driver-1"
        events.append(("start", message.job_id))
        if message.job_id in SLOW:
            await asyncio.sleep(0.05)  # the handler's own work, during which more arrive
        events.append(("end", message.job_id))

    await bus.start(handler)
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
