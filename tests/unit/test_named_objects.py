"""Named objects in a driver: computed once under concurrency, replaced, forgotten, destroyed."""

from __future__ import annotations

import threading

from driver.named_objects import NamedObjects


class Cached:
    def __init__(self) -> None:
        self.unpersisted = False

    def unpersist(self) -> None:
        self.unpersisted = True


def test_concurrent_requests_for_one_name_compute_it_once() -> None:
    registry = NamedObjects()
    calls = []
    started = threading.Barrier(8)
    release = threading.Event()

    def create() -> object:
        calls.append(1)
        release.wait(5)
        return "value"

    results = []

    def ask() -> None:
        started.wait(5)
        results.append(registry.get_or_else_create("shared", create, storage_level=None))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == [1]
    assert results == ["value"] * 8


def test_update_forget_destroy_and_names_are_reported() -> None:
    seen: list[list[dict[str, str]]] = []
    registry = NamedObjects(on_change=seen.append)
    first, second = Cached(), Cached()
    registry.update("a", first, storage_level=None, force_computation=False)
    registry.update("a", second, storage_level=None, force_computation=False)
    assert first.unpersisted and registry.get("a") is second
    registry.update("b", "kept", storage_level=None)
    registry.forget("b")
    assert registry.get("b") is None
    registry.destroy("a")
    assert second.unpersisted and registry.get_names() == []
    assert seen[0] == [{"name": "a", "type": "Cached", "storageLevel": "NONE"}]
    assert seen[-1] == []
