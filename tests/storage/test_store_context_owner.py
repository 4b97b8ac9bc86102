"""Contexts name the server that launched their driver (checked on every backend)."""

from __future__ import annotations

from jobserver.common.states import ContextState
from jobserver.storage import Store
from tests.storage.factories import make_context

ACTIVE = [state for state in ContextState if not state.is_final]


async def test_context_owner_round_trips_and_survives_updates(store: Store) -> None:
    await store.insert_context(make_context("ctx-1", owner="server-a"))

    running = await store.update_context("ctx-1", ContextState.RUNNING, application_id="app-1")

    assert running is not None and running.owner == "server-a"
    assert await store.latest_context("shared") == running
    assert await store.list_contexts(owner="server-a") == [running]


async def test_listing_by_owner_gives_its_contexts_and_those_of_no_owner(store: Store) -> None:
    await store.insert_context(make_context("mine", name="mine", start_ms=1, owner="server-a"))
    await store.insert_context(make_context("theirs", name="theirs", start_ms=2, owner="server-b"))
    await store.insert_context(make_context("legacy", name="legacy", start_ms=3, owner=None))
    await store.insert_context(make_context("mine-too", name="mine-too", start_ms=4, owner="server-a"))

    assert [c.id for c in await store.list_contexts(owner="server-a")] == ["mine-too", "legacy", "mine"]
    assert [c.id for c in await store.list_contexts(owner="server-c")] == ["legacy"]
    assert [c.id for c in await store.list_contexts()] == ["mine-too", "legacy", "theirs", "mine"]


async def test_active_contexts_of_owner_combine_both_filters(store: Store) -> None:
    await store.insert_context(
        make_context("mine-running", name="mine-running", start_ms=1, state=ContextState.RUNNING, owner="a")
    )
    await store.insert_context(
        make_context("mine-ended", name="mine-ended", start_ms=2, state=ContextState.FINISHED, owner="a")
    )
    await store.insert_context(
        make_context(
            "theirs-running", name="theirs-running", start_ms=3, state=ContextState.RUNNING, owner="b"
        )
    )
    await store.insert_context(make_context("legacy-started", name="legacy-started", start_ms=4, owner=None))

    active_of_a = await store.list_contexts(ACTIVE, owner="a")

    assert [c.id for c in active_of_a] == ["legacy-started", "mine-running"]
    assert await store.list_contexts([], owner="a") == []
