"""What a job may leave behind in a shared Spark session, so that a pooled driver can tell.

A pooled driver serves one tenant's job after another's; it may do so only while no job has
changed what the next job would find. The driver takes a snapshot of the session when Spark is up
and compares it with the session after each job when the server asks (``CheckSession``): the
current catalog and database, local and global temporary views, temporary functions (UDFs
registered by name), the SQL configuration, cached tables and persisted RDDs. Named objects the
server sees itself (``NamedObjectsChanged``). A snapshot is 14 py4j round trips (a few ms).
Sessions without a JVM (the test stand-in) offer what they have: their SQL configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Snapshot = dict[str, object]


class SessionProbe:
    """Reads a session's state: the JVM objects it asks are looked up once (py4j round trips are
    the cost: 14 of them a snapshot), and the snapshot taken when it was made is the baseline."""

    def __init__(self, session: Any) -> None:
        self._probes: dict[str, Callable[[], object]] = {"SQL configuration": lambda: _conf_items(session)}
        jvm_session = getattr(session, "_jsparkSession", None)
        if jvm_session is not None:
            state = jvm_session.sessionState()
            catalog = state.catalog()
            catalogs = state.catalogManager()
            global_views = catalog.globalTempViewManager()
            sql_conf = state.conf()
            cache = jvm_session.sharedState().cacheManager()
            java_context = session.sparkContext._jsc
            self._probes.update(
                {
                    "current database": catalog.getCurrentDatabase,
                    "current catalog": lambda: catalogs.currentCatalog().name(),
                    "temporary views": lambda: catalog.listLocalTempViews("*").size(),
                    "global temporary views": lambda: global_views.listViewNames("*").size(),
                    "temporary functions": lambda: catalog.listTemporaryFunctions().size(),
                    # one call instead of the whole map: a hash of every SQL setting and its value
                    "SQL configuration": lambda: sql_conf.getAllConfs().hashCode(),
                    "cached tables": lambda: not cache.isEmpty(),
                    "persisted RDDs": lambda: java_context.getPersistentRDDs().size(),
                }
            )
        self.baseline = self.snapshot()

    def snapshot(self) -> Snapshot:
        """The session's state as comparable values, by what a job could change."""
        values: Snapshot = {}
        for name, probe in self._probes.items():
            try:
                values[name] = probe()
            except Exception as error:  # a probe that fails counts as a change: the driver is replaced
                log.warning("cannot read the session's %s: %s", name, error)
                values[name] = error
        return values

    def changes(self) -> list[str]:
        """What differs from the baseline now."""
        return changes(self.baseline, self.snapshot())


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """What differs (a probe that failed either time differs)."""
    return sorted(
        name
        for name in before.keys() | after.keys()
        if isinstance(before.get(name), Exception)
        or isinstance(after.get(name), Exception)
        or before.get(name) != after.get(name)
    )


def _conf_items(session: Any) -> object:
    conf = getattr(session, "conf", None)
    if conf is None:
        return ()
    return tuple(sorted(conf.getAll.items())) if hasattr(conf, "getAll") else ()
