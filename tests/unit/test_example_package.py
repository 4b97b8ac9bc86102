"""examples/build.py: the wheel and egg of the example jobs."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPOSITORY_ROOT / "examples" / "build.py"
WHEEL_NAME = "sjs_python_examples-0.1.0-py3-none-any.whl"
EGG_NAME = "sjs_python_examples-0.1.0-py3.11.egg"
DIST_INFO = "sjs_python_examples-0.1.0.dist-info"


@pytest.fixture(scope="module")
def build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_build", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def built(build_script: ModuleType, tmp_path: Path) -> dict[str, Path]:
    paths = build_script.build(tmp_path / "dist")
    return {path.name: path for path in paths}


def test_builds_a_wheel_and_an_egg_with_the_expected_names(built: dict[str, Path]) -> None:
    assert sorted(built) == sorted([WHEEL_NAME, EGG_NAME])


@pytest.mark.parametrize("name", [WHEEL_NAME, EGG_NAME])
def test_packages_are_zips_the_server_accepts(built: dict[str, Path], name: str) -> None:
    assert built[name].read_bytes()[:4] == b"PK\x03\x04"


@pytest.mark.parametrize("name", [WHEEL_NAME, EGG_NAME])
def test_packages_hold_example_jobs_at_the_root(built: dict[str, Path], name: str) -> None:
    with zipfile.ZipFile(built[name]) as archive:
        names = archive.namelist()
    assert "example_jobs/__init__.py" in names
    assert "example_jobs/word_count.py" in names
    assert not [entry for entry in names if "__pycache__" in entry or entry.endswith(".pyc")]


def test_wheel_has_metadata_and_a_record_that_matches_its_contents(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built[WHEEL_NAME]) as archive:
        record = archive.read(f"{DIST_INFO}/RECORD").decode().splitlines()
        wheel_file = archive.read(f"{DIST_INFO}/WHEEL").decode()
        metadata = archive.read(f"{DIST_INFO}/METADATA").decode()
        recorded = {line.split(",")[0] for line in record}
        assert recorded == set(archive.namelist())
        for line in record:
            name, digest, size = line.split(",")
            if name == f"{DIST_INFO}/RECORD":
                assert (digest, size) == ("", "")
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={expected}", len(data))
    assert "Tag: py3-none-any" in wheel_file
    assert "Name: sjs-python-examples" in metadata
    assert "Version: 0.1.0" in metadata


def test_egg_has_pkg_info(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built[EGG_NAME]) as archive:
        pkg_info = archive.read("EGG-INFO/PKG-INFO").decode()
    assert "Name: sjs-python-examples" in pkg_info


@pytest.mark.parametrize("name", [WHEEL_NAME, EGG_NAME])
def test_package_on_sys_path_makes_example_jobs_importable_through_zipimport(
    built: dict[str, Path], name: str
) -> None:
    script = (
        "import json, zipimport, example_jobs.echo as echo; "
        "assert isinstance(echo.__loader__, zipimport.zipimporter), echo.__loader__; "
        "from pyhocon import ConfigFactory; "
        "job = echo.EchoJob(); "
        "config = ConfigFactory.parse_string('input.x = 1'); "
        "print(json.dumps(job.run_job(None, None, job.validate(None, None, config))))"
    )
    # Only the package and the repository (for sparkjobserver) are added: example_jobs can come from
    # nowhere but the zip.
    python_path = os.pathsep.join([str(built[name]), str(REPOSITORY_ROOT)])
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=built[name].parent,
        env={**os.environ, "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == '{"x": 1}'


def test_building_twice_gives_identical_bytes(build_script: ModuleType, tmp_path: Path) -> None:
    first = build_script.build(tmp_path / "first")
    second = build_script.build(tmp_path / "second")
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second]


def test_command_line_prints_the_paths_it_wrote(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), str(tmp_path)], capture_output=True, text=True, check=True
    )
    printed = completed.stdout.splitlines()
    assert printed == [str(tmp_path / WHEEL_NAME), str(tmp_path / EGG_NAME)]
    assert all(Path(line).is_file() for line in printed)
