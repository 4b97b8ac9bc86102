"""A large result's parts leave no more than a chunk's worth ahead of what the server put away."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from driver.protocol import JobResultChunk, Message
from driver.result_parts import ResultParts

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes: ten parts of a quarter of a 4,096-byte chunk


class Posted:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()

    def __call__(self, message: Message) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, count: int, deadline_s: float = 10.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.messages) >= count, deadline_s), self.messages

    def parts(self) -> list[bytes]:
        return [bytes(message.data) for message in self.messages if isinstance(message, JobResultChunk)]


def in_thread(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_part_leaves_when_all_but_a_chunk_of_what_went_before_is_put_away() -> None:
    posted = Posted()
    parts = ResultParts(posted)
    sender = in_thread(lambda: parts.send("job-1", PAYLOAD, 4096))
    posted.wait_for(4)  # a chunk's worth at once
    sender.join(0.3)  # then it waits: no word from the server yet
    assert sender.is_alive() and len(posted.messages) == 4
    parts.put_away("other-job", 4096)  # another result's word moves nothing
    parts.put_away("job-1", 1024)  # one part put away: one more may go
    posted.wait_for(5)
    sender.join(0.3)
    assert sender.is_alive() and len(posted.messages) == 5
    parts.put_away("job-1", 6144)  # the rest is within a chunk of that
    sender.join(10)
    assert not sender.is_alive()
    assert posted.parts() == [PAYLOAD[offset : offset + 1024] for offset in range(0, 10240, 1024)]
    assert {message.job_id for message in posted.messages} == {"job-1"}  # type: ignore[attr-defined]


def test_a_word_from_the_server_before_the_wait_is_not_missed() -> None:
    posted = Posted()

    def answering_post(message: Message) -> None:  # the server answers before the sender looks
        posted(message)
        assert isinstance(message, JobResultChunk)
        parts.put_away("job-1", sum(len(part) for part in posted.parts()))

    parts = ResultParts(answering_post)
    started = time.monotonic()
    parts.send("job-1", PAYLOAD, 1024)
    assert b"".join(posted.parts()) == PAYLOAD and len(posted.messages) == 40
    assert time.monotonic() - started < 5  # never waited out


def test_a_server_that_never_answers_gets_the_rest_unpaced_until_it_answers() -> None:
    posted = Posted()
    parts = ResultParts(posted, wait_s=2.0)
    started = time.monotonic()
    parts.send("job-1", PAYLOAD, 4096)  # waits once, then sends on
    waited_s = time.monotonic() - started
    assert b"".join(posted.parts()) == PAYLOAD and waited_s >= 2.0
    started = time.monotonic()
    parts.send("job-2", PAYLOAD, 4096)  # not waited for again
    assert time.monotonic() - started < 1.0
    assert len(posted.parts()) == 20

    parts.put_away("job-2", 10240)  # it answers after all (a server rejoined): paced again
    sender = in_thread(lambda: parts.send("job-3", PAYLOAD, 4096))
    posted.wait_for(24)
    sender.join(0.5)
    assert sender.is_alive() and len(posted.messages) == 24
    parts.put_away("job-3", 10240)
    sender.join(10)
    assert not sender.is_alive() and len(posted.parts()) == 30
