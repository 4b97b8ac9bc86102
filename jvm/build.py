"""Build the adapter jar for spark-jobserver's JVM job API (``make install`` runs this).

Usage: ``python jvm/build.py [--typesafe-config JAR]``. Compiles ``jvm/src/main/java`` with javac
(``--release 17``) against the jars pyspark ships and Typesafe Config (Debian's
libtypesafe-config-java, ``/usr/share/java/typesafe-config.jar``), then ``jvm/src/main/scala`` (the
Scala traits) with the Scala compiler that pyspark's jars hold (Scala 2.13, Spark's own), and
writes ``driver/jars/spark-jobserver-api.jar`` beside a copy of the Typesafe Config jar.

Without Typesafe Config it builds nothing, says so, and exits 0: the server then answers jobs of
this API with a clear error. Without a Scala compiler in pyspark's jars it builds the Java API
alone. Nothing is rebuilt when the jar is newer than every source.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this tree's driver package, whatever the virtualenv points at

from driver.jvm_api import (  # noqa: E402  (after the path is set)
    ADAPTER_JAR,
    SYSTEM_TYPESAFE_CONFIG_JAR,
    TYPESAFE_CONFIG_JAR,
    source_jars_dir,
)

SOURCES = ROOT / "jvm" / "src" / "main"
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # fixed, so that a rebuild gives the same bytes
SCALA_COMPILER_JARS = ("scala-compiler-", "scala-library-", "scala-reflect-")


def main(argv: Sequence[str]) -> int:
    typesafe = SYSTEM_TYPESAFE_CONFIG_JAR
    if argv[:1] == ["--typesafe-config"] and len(argv) == 2:
        typesafe = Path(argv[1])
    elif argv:
        print(f"usage: {Path(__file__).name} [--typesafe-config JAR]", file=sys.stderr)
        return 2
    out_dir = source_jars_dir()
    if not typesafe.is_file():
        print(
            f"jvm/build.py: skipped spark-jobserver's JVM job API: no Typesafe Config at {typesafe} "
            "(apt-get install libtypesafe-config-java, then make install again)"
        )
        return 0
    if _up_to_date(out_dir, typesafe):
        return 0
    spark_jars = _pyspark_jars()
    with tempfile.TemporaryDirectory(prefix="jvm-api-") as temporary:
        classes = Path(temporary)
        classpath = [*spark_jars, typesafe]
        _javac(classes, classpath)
        built_scala = _scalac(classes, classpath, spark_jars)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_jar(classes, out_dir / ADAPTER_JAR)
    shutil.copyfile(typesafe, out_dir / TYPESAFE_CONFIG_JAR)
    scala = "with the Scala traits" if built_scala else "Java API only: no Scala compiler in pyspark's jars"
    print(f"jvm/build.py: built {out_dir / ADAPTER_JAR} ({scala})")
    return 0


def _pyspark_jars() -> list[Path]:
    import pyspark

    return sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))


def _up_to_date(out_dir: Path, typesafe: Path) -> bool:
    jar = out_dir / ADAPTER_JAR
    if not jar.is_file() or not (out_dir / TYPESAFE_CONFIG_JAR).is_file():
        return False
    newest_source = max(path.stat().st_mtime for path in [*SOURCES.rglob("*"), Path(__file__), typesafe])
    return jar.stat().st_mtime >= newest_source


def _javac(classes: Path, classpath: Sequence[Path]) -> None:
    sources = sorted(str(path) for path in (SOURCES / "java").rglob("*.java"))
    command = ["javac", "--release", "17", "-nowarn", "-d", str(classes), "-cp", _joined(classpath)]
    subprocess.run([*command, *sources], check=True)


def _scalac(classes: Path, classpath: Sequence[Path], spark_jars: Sequence[Path]) -> bool:
    """Compile the Scala traits with the compiler in pyspark's jars; False when there is none."""
    compiler = [jar for jar in spark_jars if jar.name.startswith(SCALA_COMPILER_JARS)]
    if len(compiler) < len(SCALA_COMPILER_JARS):
        return False
    sources = sorted(str(path) for path in (SOURCES / "scala").rglob("*.scala"))
    command = ["java", "-cp", _joined(compiler), "scala.tools.nsc.Main", "-nowarn", "-release", "17"]
    command += ["-d", str(classes), "-classpath", _joined([classes, *classpath])]
    subprocess.run([*command, *sources], check=True)
    return True


def _write_jar(classes: Path, jar: Path) -> None:
    temporary = jar.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = zipfile.ZipInfo("META-INF/MANIFEST.MF", ZIP_TIMESTAMP)
        archive.writestr(manifest, "Manifest-Version: 1.0\r\nCreated-By: spark-jobserver-python\r\n\r\n")
        for path in sorted(classes.rglob("*.class")):
            entry = zipfile.ZipInfo(str(path.relative_to(classes)), ZIP_TIMESTAMP)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    temporary.replace(jar)


def _joined(paths: Sequence[Path]) -> str:
    return ":".join(str(path) for path in paths)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
