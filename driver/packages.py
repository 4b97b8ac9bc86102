"""A job's packages (its cp: jars, eggs, wheels, single modules, URIs), made local and importable.

An uploaded binary is copied once into the context's folder under its sha256, from the server's
file when this driver can read it, else fetched over the bus; either way checked against the
sha256. A package named by URI is fetched by the driver (``driver.uri_packages``) and named by the
sha256 of what arrived. What each kind becomes:

* a jar goes to the executors through ``addJar`` (the driver loads its classes through a class
  loader of its own, see ``driver.jvmjobs``), once per content: the jars stay given to Spark for
  the context's later jobs;
* an egg, wheel or zip goes first on ``sys.path`` and to the executors through ``addPyFile``;
* a single module (a ``.py`` binary, Content-Type ``text/x-python``, or a URI ending in ``.py``)
  is the file ``<sha256>/<module>.py``, that folder first on ``sys.path``; executors get it in a
  zip named by content, ``<sha256>-<module>.zip`` (Spark refuses a second file of the same name,
  so a changed module could not be given as ``<module>.py`` again). The module is the binary's
  name (or the URI's file name) without ``.py``.

A URI's kind is its file name's: ``.py`` a module, ``.whl``, ``.egg`` or ``.zip`` a Python
archive, anything else a jar.
"""

from __future__ import annotations

import enum
import hashlib
import keyword
import shutil
import threading
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlsplit

from driver.job_imports import modules_in_archive, prefer_on_path
from driver.jobbase import JobRejected
from driver.protocol import FAILURE_LOADING, JobPackage
from driver.server_files import ServerFiles
from driver.uri_packages import Fetched, UriPackages

if TYPE_CHECKING:
    from pyspark import SparkContext


class Kind(enum.Enum):
    JAR = ".jar"
    ARCHIVE = ".zip"  # addPyFile puts only .zip, .egg and .jar on the executors' path; a wheel is a zip
    MODULE = ".py"


_BINARY_KINDS = {"Jar": Kind.JAR, "Egg": Kind.ARCHIVE, "Wheel": Kind.ARCHIVE, "Python": Kind.MODULE}
_URI_KINDS = {".py": Kind.MODULE, ".whl": Kind.ARCHIVE, ".egg": Kind.ARCHIVE, ".zip": Kind.ARCHIVE}


class LocalPackage(NamedTuple):
    """A job's package on this host, fetched and checked, not yet importable."""

    kind: Kind
    module: str  # a single module's name; "" for the other kinds
    fetched: Fetched


class JobPackages:
    def __init__(self, spark_context: SparkContext, server_files: ServerFiles, *, folder: Path) -> None:
        self._spark_context = spark_context
        self._server_files = server_files
        self._folder = folder
        self._uris = UriPackages(spark_context, folder=folder)
        self._loaded: dict[str, Path] = {}  # content (and module name) -> what goes on sys.path or the jar
        self._fetch_locks: dict[str, threading.Lock] = {}  # URI or sha256 -> held while it is fetched
        self._fetch_locks_lock = threading.Lock()

    def fetch(self, packages: list[dict[str, str]]) -> list[LocalPackage]:
        """Bring the job's packages to this host (a download, a copy over the bus), in cp order.

        Not under the import lock: a slow download holds up only the jobs that need the same
        package (one fetch of a package at a time), not every job of the context."""
        local = []
        for fields in packages:
            package = JobPackage(**fields)
            kind, module = _kind_of(package)
            key = package.location if package.binary_type == "Uri" else package.sha256
            with self._fetch_lock(key):
                if package.binary_type == "Uri":
                    fetched = self._uris.fetch(package.location, kind.value)
                else:
                    fetched = self._local_copy(package, kind)
            local.append(LocalPackage(kind, module, fetched))
        return local

    def load(self, packages: list[LocalPackage]) -> list[Path]:
        """Make the fetched packages importable; returns the job's jars (for a JVM job), in cp order.

        One thread at a time, holding the lock it imports the job under: a package put first on
        sys.path drops the modules another version of it provided, which must not happen while
        another thread imports."""
        jars = []
        for kind, module, fetched in packages:
            key = f"{fetched.sha256}/{module}" if module else fetched.sha256
            local = self._loaded.get(key)
            if local is None:
                local = self._give_to_spark(kind, fetched, module)
                self._loaded[key] = local
            if kind is Kind.JAR:
                jars.append(local)
            elif kind is Kind.MODULE:
                prefer_on_path(local, frozenset({module}))
            else:
                prefer_on_path(local, modules_in_archive(local))
        return jars

    def _fetch_lock(self, key: str) -> threading.Lock:
        with self._fetch_locks_lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def _give_to_spark(self, kind: Kind, fetched: Fetched, module: str) -> Path:
        """Hand a package to Spark once; returns what the driver imports from (or the jar)."""
        if kind is Kind.JAR:
            # pyspark has no addJar of its own: the JVM SparkContext's, through py4j.
            self._spark_context._jsc.addJar(str(fetched.path))
            return fetched.path
        if kind is Kind.ARCHIVE:
            self._spark_context.addPyFile(str(fetched.path))
            return fetched.path
        import_folder = self._folder / fetched.sha256
        import_folder.mkdir(exist_ok=True)
        module_file = import_folder / f"{module}.py"
        if not module_file.exists():
            shutil.copyfile(fetched.path, module_file)
        for_executors = self._folder / f"{fetched.sha256}-{module}.zip"
        if not for_executors.exists():
            partial = for_executors.with_suffix(".part")
            with zipfile.ZipFile(partial, "w") as archive:
                archive.write(module_file, module_file.name)
            partial.replace(for_executors)
        self._spark_context.addPyFile(str(for_executors))
        return import_folder

    def _local_copy(self, package: JobPackage, kind: Kind) -> Fetched:
        """A local copy of an uploaded binary, named by content, checked against its sha256."""
        self._folder.mkdir(parents=True, exist_ok=True)
        target = self._folder / f"{package.sha256}{kind.value}"
        fetched = Fetched(package.sha256, target)
        if target.exists():
            return fetched
        servers_file = Path(package.location) if package.location else None
        if servers_file is not None and servers_file.is_file():
            shutil.copyfile(servers_file, target)
            if _sha256_of(target) == package.sha256:
                return fetched
            target.unlink()  # a same-named file on another host: fetch the real bytes
        self._server_files.download_blob(package.sha256, target, package.name)
        if _sha256_of(target) != package.sha256:
            target.unlink()
            raise JobRejected(FAILURE_LOADING, f"package {package.name} arrived damaged (sha256 mismatch)")
        return fetched


def _kind_of(package: JobPackage) -> tuple[Kind, str]:
    """The package's kind, and for a single module its module name."""
    if package.binary_type == "Uri":
        name = PurePosixPath(unquote(urlsplit(package.location).path)).name
        kind = _URI_KINDS.get(PurePosixPath(name).suffix.lower(), Kind.JAR)
    else:
        name = package.name
        kind = _BINARY_KINDS.get(package.binary_type, Kind.JAR)
    if kind is not Kind.MODULE:
        return kind, ""
    module = name.removesuffix(".py")
    if not module.isidentifier() or keyword.iskeyword(module):
        message = f"package {name} is a single module, but {module!r} is not a Python module name"
        raise JobRejected(FAILURE_LOADING, message)
    return kind, module


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
