"""One active context per name in a store, whichever server inserts it (contexts_active_name)."""

from __future__ import annotations

import pytest

from jobserver.common.errors import BadRequest
from jobserver.common.states import ContextState
from jobserver.storage import Store
from tests.storage.factories import make_context


async def test_a_second_active_context_of_a_name_is_refused_and_an_ended_one_frees_it(store: Store) -> None:
    await store.insert_context(make_context("ctx-a", name="etl", owner="server-a"))
    with pytest.raises(BadRequest, match="context etl exists"):
        await store.insert_context(make_context("ctx-b", name="etl", owner="server-b", start_ms=5))
    assert await store.update_context("ctx-a", ContextState.ERROR) is not None
    await store.insert_context(make_context("ctx-c", name="etl", owner="server-b", start_ms=10))
    latest = await store.latest_context("etl")
    assert latest is not None and latest.id == "ctx-c"
