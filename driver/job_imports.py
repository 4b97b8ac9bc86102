"""Putting a job's package first on ``sys.path`` without giving the driver's own modules away.

A job package may carry modules of any name, spark-jobserver's own ``sparkjobserver`` among them
(its ``setup-examples.py`` packs it next to the jobs). Such a package goes first on the path and
the modules it provides are forgotten, so that the job imports its own copies; every other module
stays as it was. The driver's modules are never forgotten: the driver imports all of them at start
and never imports anything a job package could shadow while jobs run.
"""

from __future__ import annotations

import functools
import importlib
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

# Top-level names whose loaded modules belong to the driver, whatever a job package provides: its
# own, what it runs on, and the standard library (a job's random.py must not become everyone's).
DRIVER_PACKAGES = frozenset(
    {"driver", "pyspark", "py4j", "zmq", "msgpack", "pyhocon", "pyparsing"}
) | frozenset(sys.stdlib_module_names)


@functools.lru_cache(maxsize=256)
def modules_in_archive(archive_path: Path) -> frozenset[str]:
    """The dotted names of the modules and packages an egg, wheel or zip provides (read once: the
    driver's copies are named by content)."""
    with zipfile.ZipFile(archive_path) as archive:
        return modules_of_files(archive.namelist())


def modules_of_files(names: Iterable[str]) -> frozenset[str]:
    """Module names of the ``.py`` (and compiled) files among ``names``, with their packages."""
    modules: set[str] = set()
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        if not dot or suffix not in ("py", "pyc", "so") or "-" in stem.split("/", 1)[0]:
            continue  # metadata folders (name-1.0.dist-info) hold no modules
        parts = stem.split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and "__pycache__" not in parts:
            modules.update(".".join(parts[: depth + 1]) for depth in range(len(parts)))
    return frozenset(modules)


def prefer_on_path(entry: Path, provides: frozenset[str]) -> None:
    """Put ``entry`` first on ``sys.path`` and forget loaded modules it provides another version of."""
    location = str(entry)
    if sys.path and sys.path[0] == location:
        return
    if location in sys.path:
        sys.path.remove(location)
    sys.path.insert(0, location)
    for name in provides:
        if name.split(".", 1)[0] in DRIVER_PACKAGES:
            continue
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) or ""
        if module is not None and not origin.startswith(location):
            del sys.modules[name]
    importlib.invalidate_caches()
