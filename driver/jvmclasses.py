"""The classes of JVM jobs in one context: jars that stay loaded, and versions that never mix.

One class loader per context grows with the jars its jobs bring (Spark's
``MutableURLClassLoader``), so a jar a job brought stays loadable for every later job of the
context, whose cp need not name it again. Its parent holds the adapter for spark-jobserver's JVM
job API and Typesafe Config (``driver.jvm_api``) when they were built.

The rule for versions: a job's jar joins the context's loader unless it holds a class that a jar
already there holds with other bytes (another version of the same jar, or of a library in it).
Such a job runs with a loader of its own over just its cp's jars, and those jars do not join the
context's: every job runs the classes its cp names, and later jobs that name no jar see the
first version loaded. A jar that only repeats classes byte for byte (the same jar uploaded
again) joins as usual.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from driver.jobbase import JobRejected
from driver.jvm_api import ADAPTER_MISSING, BRIDGE_CLASS, adapter_jars
from driver.protocol import FAILURE_LOADING, FAILURE_NOT_FOUND, error_map

if TYPE_CHECKING:
    from py4j.java_gateway import JavaObject

    from driver.spark import SparkHandle

log = logging.getLogger("driver.jvmclasses")

# Packages of the adapter: a class that needs them while the adapter is missing gets ADAPTER_MISSING.
_ADAPTER_PACKAGES = ("spark/jobserver/", "spark.jobserver.", "com/typesafe/config/", "com.typesafe.config.")


class ContextClasses:
    """The context's class loaders and the adapter's bridge (None when it was not built)."""

    def __init__(self, spark: SparkHandle, *, adapter_copies: Path) -> None:
        self._gateway = spark.gateway
        jvm = self._gateway.jvm
        base = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        adapter = adapter_jars(adapter_copies)
        self.bridge: JavaObject | None = None
        self._parent = base
        if adapter is not None:
            self._parent = jvm.java.net.URLClassLoader(self._urls(adapter), base)
            for jar in adapter:  # executors deserialise job classes that extend the API's
                spark.spark_context._jsc.addJar(str(jar))
            bridge_class = jvm.java.lang.Class.forName(BRIDGE_CLASS, True, self._parent)
            constructor = bridge_class.getConstructor(self._gateway.new_array(jvm.java.lang.Class, 0))
            self.bridge = constructor.newInstance(self._gateway.new_array(jvm.java.lang.Object, 0))
        self._shared = jvm.org.apache.spark.util.MutableURLClassLoader(self._urls([]), self._parent)
        self._joined: set[Path] = set()
        self._classes: dict[str, tuple[int, Path]] = {}  # class file -> (CRC-32, jar) in _shared
        self._own: dict[tuple[Path, ...], JavaObject] = {}  # loaders of jobs whose jars conflict
        self._lock = threading.Lock()

    def load(self, main_class: str, jars: Sequence[Path]) -> JavaObject:
        """The job's class, from the loader its jars belong to."""
        loader = self._loader_for(tuple(jars))
        try:
            return self._gateway.jvm.java.lang.Class.forName(main_class, True, loader)
        except Exception as error:  # py4j wraps ClassNotFoundException, NoClassDefFoundError, …
            text = str(error)
            if "ClassNotFoundException" in text and main_class in text:
                raise JobRejected(FAILURE_NOT_FOUND, f"classPath {main_class} not found") from error
            if self.bridge is None and any(package in text for package in _ADAPTER_PACKAGES):
                raise JobRejected(FAILURE_LOADING, ADAPTER_MISSING) from error
            message = f"cannot load {main_class}: {text.strip().splitlines()[-1] if text.strip() else text}"
            raise JobRejected(
                FAILURE_LOADING, message, error_map(message, "JobLoadingError", text)
            ) from error

    def _loader_for(self, jars: tuple[Path, ...]) -> JavaObject:
        with self._lock:
            new = [jar for jar in dict.fromkeys(jars) if jar not in self._joined]
            if not new:
                return self._shared
            contents = {jar: _class_files(jar) for jar in new}
            conflict = self._conflict(contents)
            if conflict is None:
                for jar, classes in contents.items():
                    self._shared.addURL(self._urls([jar])[0])
                    self._joined.add(jar)
                    for name, crc in classes.items():
                        self._classes.setdefault(name, (crc, jar))
                return self._shared
            if jars not in self._own:
                class_file, loaded_from = conflict
                log.info(
                    "job jars %s hold another version of %s than %s: a class loader of their own",
                    [jar.name for jar in jars],
                    class_file,
                    loaded_from.name,
                )
                self._own[jars] = self._gateway.jvm.java.net.URLClassLoader(self._urls(jars), self._parent)
            return self._own[jars]

    def _conflict(self, contents: dict[Path, dict[str, int]]) -> tuple[str, Path] | None:
        """A class file the context's loader already has with other bytes, and the jar it came from."""
        for classes in contents.values():
            for name, crc in classes.items():
                known = self._classes.get(name)
                if known is not None and known[0] != crc:
                    return name, known[1]
        return None

    def _urls(self, jars: Sequence[Path]) -> JavaObject:
        jvm = self._gateway.jvm
        urls = self._gateway.new_array(jvm.java.net.URL, len(jars))
        for index, jar in enumerate(jars):
            urls[index] = jvm.java.io.File(str(jar)).toURI().toURL()
        return urls


def _class_files(jar: Path) -> dict[str, int]:
    """The jar's class files and their CRC-32s, from its central directory (nothing is unpacked)."""
    try:
        with zipfile.ZipFile(jar) as archive:
            return {
                info.filename: info.CRC for info in archive.infolist() if info.filename.endswith(".class")
            }
    except (OSError, zipfile.BadZipFile) as error:
        raise JobRejected(FAILURE_LOADING, f"{jar.name} is not a readable jar: {error}") from error


_context_classes: ContextClasses | None = None
_context_classes_lock = threading.Lock()


def context_classes(spark: SparkHandle) -> ContextClasses:
    """This driver's (one context's) classes, made at its first JVM job."""
    global _context_classes
    with _context_classes_lock:
        if _context_classes is None:
            _context_classes = ContextClasses(spark, adapter_copies=Path.cwd() / "jvm-api")
        return _context_classes
