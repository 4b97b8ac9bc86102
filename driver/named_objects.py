"""Named objects: DataFrames and RDDs a context keeps under a name for its later jobs.

One registry per driver, shared by every job thread. ``get_or_else_create`` computes an object
once even when several jobs ask for the same name at the same time: the first computes it while the
others wait for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

DEFAULT_STORAGE_LEVEL = "MEMORY_AND_DISK"

Value = TypeVar("Value")


@dataclass(frozen=True, slots=True)
class NamedObject:
    name: str
    value: object  # a pyspark DataFrame or RDD (or any object a job wants to share)
    storage_level: str | None


class NamedObjects:
    def __init__(self, on_change: Callable[[list[dict[str, str]]], None] = lambda names: None) -> None:
        self._objects: dict[str, NamedObject] = {}
        self._lock = threading.Lock()
        self._creating: dict[str, threading.Lock] = {}
        self._on_change = on_change

    def get(self, name: str) -> object | None:
        with self._lock:
            entry = self._objects.get(name)
        return entry.value if entry is not None else None

    def get_or_else_create(
        self,
        name: str,
        create: Callable[[], object],
        *,
        storage_level: str | None = DEFAULT_STORAGE_LEVEL,
        force_computation: bool = True,
    ) -> object:
        """The object called ``name``; made by ``create`` (persisted at ``storage_level`` and,
        with ``force_computation``, computed now) only if nobody has made it yet."""
        with self._lock:
            entry = self._objects.get(name)
            if entry is not None:
                return entry.value
            creating = self._creating.setdefault(name, threading.Lock())
        with creating:  # one thread computes; the others wait here and then find it
            existing = self.get(name)
            if existing is not None:
                return existing
            value = _prepared(create(), storage_level, force_computation)
            self._store(NamedObject(name, value, storage_level))
            return value

    def update(
        self,
        name: str,
        value: Value,
        *,
        storage_level: str | None = DEFAULT_STORAGE_LEVEL,
        force_computation: bool = True,
    ) -> Value:
        """Replace (or add) ``name``; the previous object is unpersisted."""
        prepared = _prepared(value, storage_level, force_computation)
        previous = self._store(NamedObject(name, prepared, storage_level))
        if previous is not None and previous.value is not prepared:
            _unpersist(previous.value)
        return prepared

    def forget(self, name: str) -> None:
        """Drop the name, leaving the object cached (other references may still use it)."""
        self._remove(name)

    def destroy(self, name: str) -> None:
        """Drop the name and unpersist the object."""
        entry = self._remove(name)
        if entry is not None:
            _unpersist(entry.value)

    def get_names(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def describe(self) -> list[dict[str, str]]:
        with self._lock:
            entries = sorted(self._objects.values(), key=lambda entry: entry.name)
        return [
            {"name": entry.name, "type": _kind(entry.value), "storageLevel": entry.storage_level or "NONE"}
            for entry in entries
        ]

    def _store(self, entry: NamedObject) -> NamedObject | None:
        with self._lock:
            previous = self._objects.get(entry.name)
            self._objects[entry.name] = entry
        self._on_change(self.describe())
        return previous

    def _remove(self, name: str) -> NamedObject | None:
        with self._lock:
            entry = self._objects.pop(name, None)
            self._creating.pop(name, None)
        if entry is not None:
            self._on_change(self.describe())
        return entry


def _prepared(value: Value, storage_level: str | None, force_computation: bool) -> Value:
    if storage_level and hasattr(value, "persist"):
        from pyspark import StorageLevel

        value = value.persist(getattr(StorageLevel, storage_level))
    # Only Spark's lazily computed objects (they can persist) are forced; a str has count() too.
    if force_computation and hasattr(value, "persist") and hasattr(value, "count"):
        value.count()
    return value


def _unpersist(value: object) -> None:
    if hasattr(value, "unpersist"):
        value.unpersist()


def _kind(value: object) -> str:
    names = {cls.__name__ for cls in type(value).__mro__}
    if "DataFrame" in names:
        return "DataFrame"
    if "RDD" in names:
        return "RDD"
    return type(value).__name__
