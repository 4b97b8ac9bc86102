"""The server's bus over real ZeroMQ sockets: every message reaches the handler once, in arrival
order, and ``first_look`` sees a message early only while the handler has nothing in hand."""

from __future__ import annotations

import asyncio

import zmq

from driver.protocol import JobFinished, Message, encode
from jobserver.drivers.bus import Bus
from tests.support import wait_until

SLOW = {"m2", "m5"}  # their handling waits, so that later messages arrive while it is busy


async def test_first_look_comes_before_handling_and_only_while_the_handler_is_free() -> None:
    bus = Bus(bind_address="127.0.0.1", port=0, advertised_host="127.0.0.1")
    events: list[tuple[str, str]] = []
    busy = False

    async def handler(identity: bytes, message: Message) -> None:
        nonlocal busy
        assert isinstance(message, JobFinished)
        busy = True
        events.append(("start", message.job_id))
        if message.job_id in SLOW:
            await asyncio.sleep(0.05)
        events.append(("end", message.job_id))
        busy = False

    def first_look(identity: bytes, message: Message) -> None:
        assert isinstance(message, JobFinished)
        events.append(("look", message.job_id, busy))  # type: ignore[arg-type]

    await bus.start(handler, first_look)
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    try:
        dealer.connect(bus.endpoint)
        # A first message may come before the reader's first turn (then the reader finds it and
        # nobody looks); once it is handled, the reader is idle.
        dealer.send(encode(JobFinished(job_id="first", result=b"0")))
        await wait_until(lambda: _async(("end", "first") in events), timeout_s=10, interval_s=0.005)
        events.clear()
        dealer.send(encode(JobFinished(job_id="m0", result=b"0")))
        await wait_until(lambda: _async(("end", "m0") in events), timeout_s=10, interval_s=0.005)
        assert events == [("look", "m0", False), ("start", "m0"), ("end", "m0")]

        names = [f"m{number}" for number in range(1, 8)]
        for name in names:
            dealer.send(encode(JobFinished(job_id=name, result=b"1")))
        await wait_until(lambda: _async(("end", "m7") in events), timeout_s=10, interval_s=0.005)
        handled = [event[1] for event in events if event[0] == "start"]
        assert handled == ["m0", *names]  # each once, in order
        looks = [event for event in events if event[0] == "look"]
        assert all(busy_then is False for _, _, busy_then in looks)  # never while one is in hand
        for _, name, _ in looks:  # and just before its own handling
            at = events.index(("look", name, False))
            assert events[at + 1] == ("start", name)
        assert len(looks) < len(handled)  # those that came while m2 or m5 was handled: no look
    finally:
        dealer.close()
        context.term()
        await bus.close()


async def _async(value: bool) -> bool:
    return value
