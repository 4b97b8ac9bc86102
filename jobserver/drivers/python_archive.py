"""The packed Python environment that a driver in cluster deploy mode (YARN, Kubernetes) runs in.

A driver on a cluster node sees nothing of this server's disk, so spark-submit ships it an
environment: a venv (``python -m venv --copies``) holding the driver's third-party packages
(``DRIVER_DISTRIBUTIONS`` and what they require), packed as a tar.gz whose top level is the
venv itself, for ``--archives <file>#environment``. The cluster unpacks it into the driver's
working folder, and ``spark.pyspark.python`` / ``spark.pyspark.driver.python`` point at
``./environment/bin/python``. Our own code (``driver``, ``sparkjobserver``) is not in it: it
travels as the ``--py-files`` bundle, so an upgrade of the server does not rebuild the archive.
Nor is pyspark/py4j: the cluster's Spark puts its own on the driver's path (YARN from the Spark
distribution it ships, Kubernetes from the image), and they must match the cluster's JVM anyway.

The packages are copied from the server's own installation (each distribution's RECORD), not
downloaded: the same versions, built for this platform, no registry needed. The archive is built
once per dependency set, kept at ``<work-dir>/python-envs/<hash>/driver-python.tar.gz``; the hash
covers the Python version and platform, the base interpreter's path and each package's name and
version.

A venv is not a whole Python: its ``bin/python`` (a copy of the base interpreter) finds the
standard library (and here ``libpython``) at the base interpreter's path, written in its
``pyvenv.cfg``. The cluster's nodes therefore need the same Python (version, build) installed
at the same path as on this server (``sys.base_prefix``), the usual requirement of venv-pack too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib.metadata
import platform
import re
import shutil
import sys
import tarfile
import tempfile
import venv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog

from jobserver.drivers.launcher import ARCHIVE_ALIAS, DriverLaunch, ships_python_archive

log = structlog.get_logger(__name__)

# What the driver imports beyond the standard library and Spark's own Python packages.
DRIVER_DISTRIBUTIONS = ("pyzmq", "msgpack", "pyhocon", "pyparsing")
ARCHIVE_NAME = "driver-python.tar.gz"

_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class PythonArchiveError(OSError):
    """The driver's Python environment could not be packed (an OSError: the driver cannot start)."""


def dependency_set(roots: Iterable[str] = DRIVER_DISTRIBUTIONS) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``roots`` name and everything they require, each once."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        name = _normalized(pending.pop())
        if name in found:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as error:
            raise PythonArchiveError(f"package {name}, needed by the driver, is not installed") from error
        found[name] = distribution
        pending += _requirements(distribution)
    return [found[name] for name in sorted(found)]


def environment_hash(distributions: Iterable[importlib.metadata.Distribution]) -> str:
    """What decides the archive's content: the interpreter and each package's version."""
    lines = [
        f"python {platform.python_implementation()} {platform.python_version()} {sys.abiflags}",
        f"platform {sys.platform} {platform.machine()}",
        f"base {sys.base_prefix}",
        *sorted(f"{_normalized(dist.metadata['Name'])}=={dist.version}" for dist in distributions),
    ]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:24]


def build_archive(folder: Path, roots: Iterable[str] = DRIVER_DISTRIBUTIONS) -> Path:
    """The archive of the driver's environment under ``folder`` (``<work-dir>/python-envs``),
    built unless one of the same dependency set is there. Blocking: run it off the event loop."""
    distributions = dependency_set(roots)
    target = folder / environment_hash(distributions) / ARCHIVE_NAME
    if target.exists():
        return target
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".building-") as staging:
            environment = Path(staging) / ARCHIVE_ALIAS
            # --copies: bin/python is a file of its own, not a link into this server's venv.
            venv.EnvBuilder(symlinks=False, with_pip=False).create(environment)
            site_packages = _site_packages(environment)
            for distribution in distributions:
                _copy_distribution(distribution, site_packages)
            packed = Path(staging) / ARCHIVE_NAME
            with tarfile.open(packed, "w:gz") as archive:
                # The archive's top level is the venv: the cluster unpacks it into ./environment.
                for entry in sorted(environment.iterdir()):
                    archive.add(entry, arcname=entry.name)
            target.parent.mkdir(mode=0o700, exist_ok=True)
            packed.replace(target)  # whole or absent: a reader never sees half an archive
    except OSError as error:
        message = f"cannot build the driver's Python environment archive: {error}"
        raise PythonArchiveError(message) from error
    names = [dist.metadata["Name"] for dist in distributions]
    log.info("python_archive_built", path=str(target), packages=names)
    return target


class PythonArchives:
    """The archive a cluster-mode driver ships, per the ``spark.jobserver.driver.python-archive``
    setting: ``auto`` builds it (once: contexts starting together wait for the same build),
    ``off`` ships none, anything else is the path of a prebuilt one."""

    def __init__(self, setting: str, work_dir: Path) -> None:
        self._setting = setting
        self._folder = work_dir / "python-envs"
        self._built: Path | None = None
        self._lock = asyncio.Lock()

    async def for_launch(self, launch: DriverLaunch, context_config: Mapping[str, Any]) -> DriverLaunch:
        """``launch`` with the archive its driver ships, if it ships one."""
        if self._setting == "off" or not ships_python_archive(launch, context_config):
            return launch
        return dataclasses.replace(launch, python_archive=await self._archive())

    async def _archive(self) -> Path:
        if self._setting != "auto":
            return Path(self._setting)
        async with self._lock:
            if self._built is None or not self._built.exists():
                self._built = await asyncio.to_thread(build_archive, self._folder)
            return self._built


def _requirements(distribution: importlib.metadata.Distribution) -> list[str]:
    names = []
    for requirement in distribution.requires or []:
        requirement_text, _, marker = requirement.partition(";")
        if marker.strip() and not _marker_holds(marker):
            continue
        match = _REQUIREMENT_NAME.match(requirement_text)
        if match:
            names.append(match.group(1))
    return names


def _marker_holds(marker: str) -> bool:
    """Whether a requirement's environment marker holds here; extras are never asked for."""
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker  # pip's own; present wherever pip installed us
    except ImportError:
        return False  # the roots name every package the driver needs; a marker only adds extras
    return bool(Marker(marker).evaluate())


def _site_packages(environment: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return environment / "lib" / version / "site-packages"


def _copy_distribution(distribution: importlib.metadata.Distribution, site_packages: Path) -> None:
    """Copy an installed distribution's files (its RECORD) that live in site-packages."""
    root = Path(str(distribution.locate_file(""))).resolve()
    files = distribution.files
    if files is None:
        raise PythonArchiveError(f"package {distribution.metadata['Name']} lists no files (no RECORD)")
    for entry in files:
        source = Path(str(distribution.locate_file(entry))).resolve()
        if not source.is_relative_to(root) or "__pycache__" in source.parts or not source.is_file():
            continue  # scripts in bin/, byte code (rebuilt on the node), files the RECORD outlived
        destination = site_packages / source.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
