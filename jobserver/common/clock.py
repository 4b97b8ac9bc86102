"""The time the scheduler lives by: a seam, so that tests move time on without waiting for it.

``SystemClock`` is the wall clock; a test hands the server a clock of its own (``create_app(…,
clock=…)``) whose ``now`` it sets and whose sleepers it wakes when it moves time past them.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Protocol

# A sleep longer than this is cut into pieces: the wall clock may jump (NTP, a suspended VM),
# and a due time is checked against the clock again at least this often.
MAX_SLEEP_S = 60.0


class Clock(Protocol):
    def now(self) -> datetime.datetime:
        """Now, in UTC."""

    async def sleep_until(self, moment: datetime.datetime) -> None:
        """Return at ``moment`` or a little after (or earlier, but never busily: the caller looks
        at ``now`` again)."""


class SystemClock:
    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    async def sleep_until(self, moment: datetime.datetime) -> None:
        delay_s = (moment - self.now()).total_seconds()
        await asyncio.sleep(min(max(delay_s, 0.0), MAX_SLEEP_S))
