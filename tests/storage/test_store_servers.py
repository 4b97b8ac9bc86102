"""The servers sharing a store (checked on every backend): heartbeats, and the adoption of a
silent server's contexts by exactly one peer."""

from __future__ import annotations

import asyncio
import datetime

from jobserver.common.records import ServerRecord, utc_now
from jobserver.common.states import ContextState
from jobserver.storage import Store
from tests.storage.factories import make_context


def server(server_id: str, *, seconds_ago: float = 0.0) -> ServerRecord:
    return ServerRecord(
        server_id=server_id,
        rest_url=f"http://{server_id}:8090",
        bus_endpoint=f"tcp://{server_id}:5555",
        key_fingerprint="same",
        heartbeat_time=utc_now() - datetime.timedelta(seconds=seconds_ago),
    )


async def test_a_beat_inserts_then_refreshes_a_servers_row(store: Store) -> None:
    await store.beat(server("a", seconds_ago=60))
    await store.beat(server("b"))
    await store.beat(server("a"))
    listed = await store.list_servers()
    assert [entry.server_id for entry in listed] == ["a", "b"]
    assert utc_now() - listed[0].heartbeat_time < datetime.timedelta(seconds=5)
    await store.remove_server("a")
    assert [entry.server_id for entry in await store.list_servers()] == ["b"]


async def test_exactly_one_peer_adopts_the_active_contexts_of_a_silent_server(store: Store) -> None:
    await store.beat(server("dead", seconds_ago=60))
    await store.insert_context(make_context("running", name="one", owner="dead"))
    await store.insert_context(make_context("ended", name="two", owner="dead", state=ContextState.FINISHED))
    await store.insert_context(make_context("other", name="three", owner="alive"))
    silent_since = utc_now() - datetime.timedelta(seconds=30)

    claims = await asyncio.gather(
        *(store.adopt_contexts("dead", adopter, silent_since=silent_since) for adopter in ("p", "q", "r"))
    )

    winners = [claim for claim in claims if claim]
    assert len(winners) == 1 and [record.id for record in winners[0]] == ["running"]
    adopter = winners[0][0].owner
    assert [entry.adopted_by for entry in await store.list_servers()] == [adopter]
    owners = {record.id: record.owner for record in await store.list_contexts()}
    assert owners == {"running": adopter, "ended": "dead", "other": "alive"}


async def test_a_server_that_beats_again_is_nobodys_to_adopt(store: Store) -> None:
    await store.beat(server("late", seconds_ago=60))
    await store.insert_context(make_context("mine", owner="late"))
    await store.beat(server("late"))
    silent_since = utc_now() - datetime.timedelta(seconds=30)
    assert await store.adopt_contexts("late", "eager", silent_since=silent_since) == []
    assert [record.owner for record in await store.list_contexts()] == ["late"]


async def test_a_beat_tells_a_server_who_adopted_it_once(store: Store) -> None:
    assert await store.beat(server("stalled", seconds_ago=60)) is None
    await store.insert_context(make_context("held", name="held", owner="stalled"))
    silent_since = utc_now() - datetime.timedelta(seconds=30)
    assert [
        record.id for record in await store.adopt_contexts("stalled", "rescuer", silent_since=silent_since)
    ] == ["held"]
    # The stalled server wakes up: its beat says who took its contexts, once, and clears it.
    assert await store.beat(server("stalled")) == "rescuer"
    assert await store.beat(server("stalled")) is None
