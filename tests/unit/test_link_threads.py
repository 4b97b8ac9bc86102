"""The driver's link under concurrent use: job threads send on the socket the main thread reads.

ZeroMQ's fd is edge-triggered and any call on the socket may consume its edge, so a frame from the
server that arrives while a job thread sends must still reach the main loop. Real sockets on both
ends; the server's end is a plain ROUTER in this test.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import zmq

from driver.link import ServerLink
from driver.protocol import (
    DriverSecrets,
    JobFinished,
    JobReportAck,
    JobStarted,
    KillJob,
    Message,
    Welcome,
    decode,
    encode,
)
from tests.support import wait_for

DEADLINE_S = 20.0
POSTING_THREADS = 4
POSTS_PER_THREAD = 300
SERVER_FRAMES = 600


def _serve_in_background(link: ServerLink, handled: list[Message]) -> threading.Thread:
    thread = threading.Thread(
        target=link.serve, args=(handled.append, lambda: []), name="link-serve", daemon=True
    )
    thread.start()
    return thread


def _welcomed_link(router: zmq.Socket[bytes], endpoint: str) -> tuple[ServerLink, bytes]:
    link = ServerLink(endpoint, "ctx-1", DriverSecrets(token="token"))
    answered = threading.Thread(target=link.handshake, args=(DEADLINE_S,), daemon=True)
    answered.start()
    identity, hello = router.recv_multipart()
    assert decode(hello).TYPE == "hello"
    welcome = Welcome(
        heartbeat_interval_s=60.0,
        server_silence_grace_s=600.0,
        max_jobs=4,
        result_chunk_bytes=1 << 20,
        context_config_json=b"{}",
        server_config_json=b"{}",
    )
    router.send_multipart([identity, encode(welcome)])
    answered.join(DEADLINE_S)
    assert link.welcome is not None
    return link, identity


@contextlib.contextmanager
def _serving_link(handled: list[Message]) -> Iterator[tuple[zmq.Socket[bytes], ServerLink, bytes]]:
    """A welcomed link serving in the background, and the server's end of it (a plain ROUTER)."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    link, identity = _welcomed_link(router, f"tcp://127.0.0.1:{port}")
    serving = _serve_in_background(link, handled)
    try:
        yield router, link, identity
    finally:
        link.stop_serving()
        serving.join(DEADLINE_S)
        link.close()
        router.close()
        context.term()
    assert not serving.is_alive()


def test_frames_from_the_server_arrive_while_job_threads_send() -> None:
    handled: list[Message] = []
    with _serving_link(handled) as (router, link, identity):

        def post_many(thread_number: int) -> None:
            for number in range(POSTS_PER_THREAD):
                link.post(JobStarted(job_id=f"{thread_number}-{number}"))

        posters = [threading.Thread(target=post_many, args=(n,)) for n in range(POSTING_THREADS)]
        for poster in posters:
            poster.start()
        for number in range(SERVER_FRAMES):
            router.send_multipart([identity, encode(KillJob(job_id=f"kill-{number}"))])
        for poster in posters:
            poster.join(DEADLINE_S)

        received: set[str] = set()

        def all_received() -> bool:
            while router.poll(0):
                message = decode(router.recv_multipart()[1])
                if isinstance(message, JobStarted):
                    received.add(message.job_id)
            return len(received) == POSTING_THREADS * POSTS_PER_THREAD

        wait_for(all_received, timeout_s=DEADLINE_S, what="every frame the job threads sent")
        wait_for(lambda: len(handled) >= SERVER_FRAMES, timeout_s=DEADLINE_S, what="every server frame")
        assert [message.job_id for message in handled] == [f"kill-{n}" for n in range(SERVER_FRAMES)]


def test_a_job_report_is_held_until_the_server_acknowledges_it() -> None:
    with _serving_link([]) as (router, link, identity):
        link.post(JobFinished(job_id="job-1", result=b"[1]"))  # from this (job) thread, at once
        assert router.poll(int(DEADLINE_S * 1000))
        assert decode(router.recv_multipart()[1]) == JobFinished(job_id="job-1", result=b"[1]")
        assert link.held_job_ids() == ["job-1"]

        router.send_multipart([identity, encode(JobReportAck(job_id="job-1"))])
        wait_for(lambda: link.held_job_ids() == [], timeout_s=DEADLINE_S, what="the report let go")
