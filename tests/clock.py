"""A clock the tests move on (the server's ``clock=`` seam): the scheduler's sleepers wake when
time passes their moment, without the test waiting for it."""

from __future__ import annotations

import asyncio
import datetime


class ManualClock:
    def __init__(self, start: datetime.datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[datetime.datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime.datetime:
        return self._now

    async def sleep_until(self, moment: datetime.datetime) -> None:
        if moment <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((moment, future))
        try:
            await future
        finally:
            self._sleepers = [(when, other) for when, other in self._sleepers if other is not future]

    def set(self, moment: datetime.datetime) -> None:
        self._now = moment
        for when, future in list(self._sleepers):
            if when <= moment and not future.done():
                future.set_result(None)

    def advance(self, **delta: float) -> None:
        self.set(self._now + datetime.timedelta(**delta))
