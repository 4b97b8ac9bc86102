"""The driver's link: job threads send their frames themselves while the main loop serves, in
order, and input that arrives meanwhile is never left waiting for the next heartbeat."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pytest
import zmq

from driver.link import ServerLink
from driver.protocol import (
    DriverHeartbeat,
    Hello,
    JobKilled,
    KillJob,
    Message,
    Welcome,
    decode,
    encode,
)

SILENT_S = 60.0  # no heartbeat falls due during a test: only the link's own wake-ups move it


class Server:
    """The server's ROUTER socket, driven from the test's thread."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.identity = b""

    def receive(self, timeout_s: float = 10.0) -> Message:
        while True:
            assert self.socket.poll(int(timeout_s * 1000)), "nothing arrived from the driver"
            identity, frame = self.socket.recv_multipart()
            self.identity = identity
            message = decode(frame)
            if not isinstance(message, DriverHeartbeat):
                return message

    def send(self, message: Message) -> None:
        self.socket.send_multipart([self.identity, encode(message)])

    def close(self) -> None:
        self.socket.close()
        self.context.term()


@pytest.fixture
def served() -> Iterator[tuple[Server, ServerLink, queue.SimpleQueue[Message]]]:
    """A link that said hello and serves on its own thread; what it handles lands in a queue."""
    server = Server()
    link = ServerLink(f"tcp://127.0.0.1:{server.port}", "ctx-1", "token")
    handled: queue.SimpleQueue[Message] = queue.SimpleQueue()
    hello: list[Message] = []
    greeter = threading.Thread(target=lambda: hello.append(server.receive()))
    greeter.start()
    greeter.join(0.1)

    def answer_hello() -> None:
        greeter.join(10)
        server.send(Welcome(SILENT_S, SILENT_S * 2, 2, 1 << 20, b"{}"))

    threading.Thread(target=answer_hello).start()
    link.handshake(10)
    assert isinstance(hello[0], Hello)
    serving = threading.Thread(target=link.serve, args=(handled.put, list), name="main-loop")
    serving.start()
    yield server, link, handled
    link.stop_serving()
    serving.join(10)
    link.close()
    server.close()


def test_posts_from_job_threads_arrive_in_order(served) -> None:
    server, link, _ = served

    def job(thread: int) -> None:
        for number in range(200):
            link.post(JobKilled(job_id=f"{thread}-{number}"))

    threads = [threading.Thread(target=job, args=(thread,)) for thread in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    arrived = [server.receive() for _ in range(600)]
    for thread in range(3):
        mine = [message.job_id for message in arrived if message.job_id.startswith(f"{thread}-")]
        assert mine == [f"{thread}-{number}" for number in range(200)]


def test_input_that_comes_while_job_threads_send_is_handled_at_once(served) -> None:
    """The server keeps sending while a job thread answers each message itself. Input whose
    wake-up signal a job thread's send consumed would wait for the next heartbeat (a minute)."""
    server, link, handled = served
    rounds = 3000

    def job_thread() -> None:
        for _ in range(rounds):
            message = handled.get(timeout=30)
            assert isinstance(message, KillJob)
            link.post(JobKilled(job_id=message.job_id))

    worker = threading.Thread(target=job_thread)
    worker.start()
    answered: list[str] = []
    for number in range(rounds):
        server.send(KillJob(job_id=str(number)))
        # Answers are collected as they come, without waiting for them; at most 100 questions
        # are outstanding (a ROUTER drops what a peer's full queue cannot take).
        while server.socket.poll(0) or number - len(answered) >= 100:
            answered.append(server.receive().job_id)
    while len(answered) < rounds:
        answered.append(server.receive(timeout_s=10).job_id)
    worker.join(10)
    assert answered == [str(number) for number in range(rounds)]
