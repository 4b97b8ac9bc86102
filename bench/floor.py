"""The floor of the job path on this machine (``make bench``): the same processes, sockets and
threads as a sync job through the server, with none of the job server's code.

A client process sends HTTP/1.1 requests over one keep-alive connection to an aiohttp server,
which sends each over a ZeroMQ ROUTER socket (driven by ``add_reader``, as ``jobserver.drivers.bus`` does)
to a "driver" process. The driver's main thread polls its DEALER socket and hands each message
to a worker thread, which idles for a while (the job), then sends the answer back itself under
the socket's lock, as ``driver.link`` does. The server answers the HTTP request.

Printed: p50/p99 of round trip minus the idle time, with the worker idle 0 ms (back to back) and
80 ms (as long as the trivial Spark job of ``bench/latency.py``). Compare the 80 ms row with
``latency.py``'s "server's share": the difference is what the job server's own code costs. Not a
test: nothing here passes or fails.
"""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time

import msgpack
import zmq
from aiohttp import web

REQUESTS = 300
WARM_UP = 20
IDLE_S = (0.0, 0.08)


def driver(endpoint: str, idle_s: float) -> None:
    """The driver: main thread polls, a worker thread idles and answers."""
    context = zmq.Context()
    link = context.socket(zmq.DEALER)
    link.connect(endpoint)
    lock = threading.Lock()
    jobs: queue.SimpleQueue[dict[str, float]] = queue.SimpleQueue()

    def work() -> None:
        while True:
            job = jobs.get()
            started = time.perf_counter()
            if idle_s:
                time.sleep(idle_s)
            idle_ms = (time.perf_counter() - started) * 1000.0
            with lock:
                link.send(msgpack.packb({"id": job["id"], "idle_ms": idle_ms}))

    threading.Thread(target=work, daemon=True).start()
    with lock:
        link.send(b"hello")
    poller = zmq.Poller()
    poller.register(link, zmq.POLLIN)
    while True:
        poller.poll(1000)
        while True:
            try:
                with lock:
                    frame = link.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            jobs.put(msgpack.unpackb(frame))


def client(port: int) -> None:
    """Blocking HTTP/1.1 client; prints one JSON line of (round trip - idle) samples in ms."""
    connection = socket.create_connection(("127.0.0.1", port))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b"POST /jobs?sync=true HTTP/1.1\r\nHost: floor\r\nContent-Length: 2\r\n\r\n{}"
    buffer = b""
    samples = []
    for number in range(WARM_UP + REQUESTS):
        started = time.perf_counter()
        connection.sendall(request)
        while b"\r\n\r\n" not in buffer:
            buffer += connection.recv(65536)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line[15:]) for line in lines if line.lower().startswith(b"content-length:"))
        while len(buffer) < length:
            buffer += connection.recv(65536)
        body, buffer = buffer[:length], buffer[length:]
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if number >= WARM_UP:
            samples.append(elapsed_ms - json.loads(body)["idle_ms"])
    print(json.dumps(samples))


async def serve(idle_s: float) -> list[float]:
    """The server for one row: returns the client's samples."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    bus_port = router.bind_to_random_port("tcp://127.0.0.1")
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[float]] = {}
    peer: list[bytes] = []
    joined = loop.create_future()

    def readable() -> None:
        while router.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            identity, frame = router.recv_multipart()
            if frame == b"hello":
                peer.append(identity)
                joined.set_result(None)
                continue
            answer = msgpack.unpackb(frame)
            waiting.pop(answer["id"]).set_result(answer["idle_ms"])

    loop.add_reader(router.getsockopt(zmq.FD), readable)
    this = sys.executable, __file__
    driver_process = subprocess.Popen([*this, "driver", f"tcp://127.0.0.1:{bus_port}", str(idle_s)])
    runner: web.AppRunner | None = None
    try:
        await asyncio.wait_for(joined, 30)
        numbers = iter(range(1 << 62))

        async def job(request: web.Request) -> web.Response:
            await request.text()
            number = next(numbers)
            answer = waiting[number] = loop.create_future()
            router.send_multipart([peer[0], msgpack.packb({"id": number})])
            idle_ms = await answer
            body = json.dumps({"idle_ms": idle_ms}).encode()
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/jobs", job)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        client_process = await asyncio.create_subprocess_exec(
            *this, "client", str(port), stdout=asyncio.subprocess.PIPE
        )
        output, _ = await client_process.communicate()
        return list(json.loads(output))
    finally:
        if runner is not None:
            await runner.cleanup()
        driver_process.kill()
        driver_process.wait()
        loop.remove_reader(router.getsockopt(zmq.FD))
        router.close(linger=0)
        context.term()


def main() -> int:
    print(f"\n{REQUESTS} sequential requests per row: client, aiohttp, ZeroMQ, driver threads only\n")
    print(f"| {'measurement':<44} | {'p50 ms':>8} | {'p99 ms':>8} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|")
    for idle_s in IDLE_S:
        samples = sorted(asyncio.run(serve(idle_s)))
        name = f"floor: round trip - {idle_s * 1000:.0f} ms idle"
        p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
        print(f"| {name:<44} | {statistics.median(samples):>8.2f} | {p99:>8.2f} |")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["driver"]:
        driver(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1:2] == ["client"]:
        client(int(sys.argv[2]))
    else:
        sys.exit(main())
