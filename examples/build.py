"""Pack the example jobs into the wheel and the egg that the walk-through uploads.

Usage: ``python examples/build.py [OUT_DIR]`` (default ``examples/dist``). Writes
``sjs_python_examples-0.1.0-py3-none-any.whl`` and ``sjs_python_examples-0.1.0-py3.11.egg`` and prints
their paths.

Only the standard library is used, so the packages can be built before any virtualenv exists. Both
files are plain zips with ``example_jobs/`` at the root: putting either on ``sys.path`` makes
``import example_jobs.word_count`` work. They are reproducible: entries are sorted and carry a fixed
timestamp and mode, so building twice gives the same bytes (and the server sees the same hash).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

PROJECT_NAME = "sjs-python-examples"
DISTRIBUTION = "sjs_python_examples"  # the project name as wheel and egg file names spell it
VERSION = "0.1.0"
SUMMARY = "Example Python jobs for the Spark job server"
# An egg's name carries a Python version. The jobs are pure Python; naming the oldest version we
# support keeps the file name the same whichever interpreter runs this script.
EGG_PYTHON_TAG = "py3.11"

EXAMPLES_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = EXAMPLES_DIR / "python" / "example_jobs"
DEFAULT_OUT_DIR = EXAMPLES_DIR / "dist"

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
FILE_MODE = 0o644
UNIX = 3  # zip "made by" system; fixed so the bytes do not depend on the building machine


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        print(f"usage: {Path(__file__).name} [OUT_DIR]", file=sys.stderr)
        return 2
    out_dir = Path(argv[0]) if argv else DEFAULT_OUT_DIR
    for path in build(out_dir):
        print(path)
    return 0


def build(out_dir: Path) -> list[Path]:
    """Write the wheel and the egg into ``out_dir`` (created if needed); return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = package_sources(PACKAGE_DIR)
    wheel_path = out_dir / f"{DISTRIBUTION}-{VERSION}-py3-none-any.whl"
    egg_path = out_dir / f"{DISTRIBUTION}-{VERSION}-{EGG_PYTHON_TAG}.egg"
    write_zip(wheel_path, wheel_entries(sources))
    write_zip(egg_path, egg_entries(sources))
    return [wheel_path, egg_path]


def package_sources(package_dir: Path) -> dict[str, bytes]:
    """Every ``.py`` file of the package, keyed by its name inside the archive."""
    if not (package_dir / "__init__.py").is_file():
        raise FileNotFoundError(f"no Python package at {package_dir}")
    root = package_dir.parent
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(package_dir.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def metadata(metadata_version: str) -> bytes:
    # No Requires-Dist: pyspark and sparkjobserver come from the server, and installing the wheel
    # elsewhere should not pull in a second Spark.
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {PROJECT_NAME}",
        f"Version: {VERSION}",
        f"Summary: {SUMMARY}",
        "Requires-Python: >=3.11",
    ]
    return lines_text(lines)


def top_level(sources: dict[str, bytes]) -> bytes:
    return lines_text(sorted({name.split("/", 1)[0] for name in sources}))


def wheel_entries(sources: dict[str, bytes]) -> dict[str, bytes]:
    dist_info = f"{DISTRIBUTION}-{VERSION}.dist-info"
    wheel_file = lines_text(
        ["Wheel-Version: 1.0", "Generator: examples/build.py", "Root-Is-Purelib: true", "Tag: py3-none-any"]
    )
    entries = {
        **sources,
        f"{dist_info}/METADATA": metadata("2.1"),
        f"{dist_info}/WHEEL": wheel_file,
        f"{dist_info}/top_level.txt": top_level(sources),
    }
    record_name = f"{dist_info}/RECORD"
    entries[record_name] = wheel_record(entries, record_name)
    return entries


def wheel_record(entries: dict[str, bytes], record_name: str) -> bytes:
    """The RECORD file: each entry's hash and size; RECORD itself is listed without either."""
    lines = [f"{name},sha256={record_digest(data)},{len(data)}" for name, data in sorted(entries.items())]
    lines.append(f"{record_name},,")
    return lines_text(lines)


def lines_text(lines: Sequence[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def record_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def egg_entries(sources: dict[str, bytes]) -> dict[str, bytes]:
    return {
        **sources,
        "EGG-INFO/PKG-INFO": metadata("2.1"),
        "EGG-INFO/SOURCES.txt": lines_text(sorted(sources)),
        "EGG-INFO/top_level.txt": top_level(sources),
        "EGG-INFO/dependency_links.txt": b"\n",
        "EGG-INFO/zip-safe": b"\n",
    }


def write_zip(path: Path, entries: dict[str, bytes]) -> None:
    # Written beside the target and renamed, so a reader never sees half a package.
    partial = path.with_name(f".{path.name}.partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(entries):
            archive.writestr(zip_entry(name), entries[name])
    partial.replace(path)


def zip_entry(name: str) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.create_system = UNIX
    entry.external_attr = (0o100000 | FILE_MODE) << 16  # a regular file with mode 644
    return entry


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
