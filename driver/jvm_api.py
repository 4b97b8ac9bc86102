"""Where the adapter jar for spark-jobserver's JVM job API lives, for its build and the driver.

``make install`` compiles ``jvm/`` (``jvm/build.py``) into ``driver/jars/``: the adapter
(``spark.jobserver.api``, ``spark.jobserver.japi``, the Scala traits where they were built) and the
Typesafe Config jar it needs, both package data of ``driver``. A driver reads them from its own
package, on disk or inside the bundle zip that ``--py-files`` ships to other hosts.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

# The one place that names them: the build writes here, the driver reads from here.
JARS_FOLDER = "jars"  # inside the driver package
ADAPTER_JAR = "spark-jobserver-api.jar"
TYPESAFE_CONFIG_JAR = "typesafe-config.jar"
ADAPTER_JARS = (ADAPTER_JAR, TYPESAFE_CONFIG_JAR)

# Debian's libtypesafe-config-java (1.3.1) installs it here.
SYSTEM_TYPESAFE_CONFIG_JAR = Path("/usr/share/java/typesafe-config.jar")

# The class the driver calls jobs of the API through (jvm/src/main/java/.../bridge/JobBridge.java).
BRIDGE_CLASS = "spark.jobserver.bridge.JobBridge"

ADAPTER_MISSING = (
    "spark-jobserver's JVM job API (spark.jobserver.api, spark.jobserver.japi) is not installed on "
    "this server: install libtypesafe-config-java (or put Typesafe Config 1.3 at "
    f"{SYSTEM_TYPESAFE_CONFIG_JAR}) and run make install again"
)


def source_jars_dir() -> Path:
    """The folder the build writes to: ``driver/jars`` beside this module."""
    return Path(__file__).resolve().parent / JARS_FOLDER


def adapter_jars(copy_to: Path) -> list[Path] | None:
    """The adapter's jars as local files, or None when they were not built.

    From the package folder when it is on disk; copied to ``copy_to`` when the package is read
    from a zip (a driver on another host)."""
    folder = resources.files("driver").joinpath(JARS_FOLDER)
    jars = []
    for name in ADAPTER_JARS:
        resource = folder.joinpath(name)
        if not resource.is_file():
            return None
        local = Path(str(resource))
        if not local.is_file():  # inside a zip
            copy_to.mkdir(parents=True, exist_ok=True)
            local = copy_to / name
            with resource.open("rb") as source, open(local, "wb") as target:
                shutil.copyfileobj(source, target)
        jars.append(local)
    return jars
