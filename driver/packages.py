"""A job's packages (its cp: eggs, wheels, jars), made local and importable.

Each package is copied once into the context's folder under its sha256, from the server's file
when this driver can read it, else fetched over the bus; either way checked against the sha256.
An egg or wheel goes first on ``sys.path`` here and to the executors through ``addPyFile``; a jar
goes to the executors through ``addJar`` (the driver loads its classes through a class loader of
its own, see ``driver.jobkinds``).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from driver.job_imports import modules_in_archive, prefer_on_path
from driver.jobbase import JobRejected
from driver.protocol import FAILURE_LOADING, FAILURE_MALFORMED_URL, JobPackage
from driver.server_files import ServerFiles

if TYPE_CHECKING:
    from pyspark import SparkContext


class JobPackages:
    def __init__(self, spark_context: SparkContext, server_files: ServerFiles, *, folder: Path) -> None:
        self._spark_context = spark_context
        self._server_files = server_files
        self._folder = folder
        self._loaded: dict[str, Path] = {}  # sha256 -> local file, given to Spark

    def load(self, packages: list[dict[str, str]]) -> list[Path]:
        """Make the job's packages importable; returns its jars (for a JVM job), in cp order.

        One thread at a time, holding the lock it imports the job under: a package put first on
        sys.path drops the modules another version of it provided, which must not happen while
        another thread imports."""
        jars = []
        for fields in packages:
            package = JobPackage(**fields)
            is_jar = _is_jar(package)
            local = self._loaded.get(package.sha256)
            if local is None:
                local = self._local_copy(package)
                if is_jar:
                    # pyspark has no addJar of its own: the JVM SparkContext's, through py4j.
                    self._spark_context._jsc.addJar(str(local))
                else:
                    self._spark_context.addPyFile(str(local))
                self._loaded[package.sha256] = local
            if is_jar:
                jars.append(local)
            else:
                prefer_on_path(local, modules_in_archive(local))
        return jars

    def _local_copy(self, package: JobPackage) -> Path:
        """A local copy of the package, named by content, checked against its sha256."""
        self._folder.mkdir(parents=True, exist_ok=True)
        # addPyFile puts only .zip/.egg/.jar on the executors' path, and a wheel is a zip.
        suffix = ".jar" if _is_jar(package) else ".zip"
        target = self._folder / f"{package.sha256 or Path(package.name).stem}{suffix}"
        if target.exists():
            return target
        if package.binary_type == "Uri":
            source = _local_path_of_uri(package.location)
            if not source.is_file():
                raise JobRejected(FAILURE_LOADING, f"package {package.name} is not readable at {source}")
            shutil.copyfile(source, target)
            return target
        servers_file = Path(package.location) if package.location else None
        if servers_file is not None and servers_file.is_file():
            shutil.copyfile(servers_file, target)
            if _sha256_of(target) == package.sha256:
                return target
            target.unlink()  # a same-named file on another host: fetch the real bytes
        self._server_files.download_blob(package.sha256, target, package.name)
        if _sha256_of(target) != package.sha256:
            target.unlink()
            raise JobRejected(FAILURE_LOADING, f"package {package.name} arrived damaged (sha256 mismatch)")
        return target


def _is_jar(package: JobPackage) -> bool:
    return package.binary_type == "Jar" or package.location.endswith(".jar")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_path_of_uri(location: str) -> Path:
    for prefix in ("file://", "local://"):
        if location.startswith(prefix):
            return Path(location.removeprefix(prefix))
    raise JobRejected(
        FAILURE_MALFORMED_URL, f"cannot load {location}: only file:// and local:// URIs are readable"
    )
