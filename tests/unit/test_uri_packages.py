"""URI packages fetched by the driver without Spark: local files and HTTP (the Hadoop path needs a
JVM and is covered end to end in tests/e2e/test_job_jars.py)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from driver.jobbase import JobRejected
from driver.protocol import FAILURE_LOADING, FAILURE_MALFORMED_URL
from driver.uri_packages import UriPackages


@pytest.fixture
def packages(tmp_path: Path) -> UriPackages:
    no_spark: Any = None  # only Hadoop URIs reach the SparkContext
    return UriPackages(no_spark, folder=tmp_path / "context")


ANSWERS: list[int] = []  # the status of each answer the test server gave, in order


class CountingHandler(SimpleHTTPRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        ANSWERS.append(int(code))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "served"
    folder.mkdir()
    ANSWERS.clear()
    handler = partial(CountingHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_local_file_is_known_by_its_content_and_read_again_when_it_changes(
    packages: UriPackages, tmp_path: Path
) -> None:
    jar = tmp_path / "dependency.jar"
    jar.write_bytes(b"first version")
    first = packages.fetch(jar.as_uri(), ".jar")
    assert first.path.read_bytes() == b"first version" and first.path.name == f"{first.sha256}.jar"
    assert packages.fetch(jar.as_uri(), ".jar") == first
    jar.write_bytes(b"second version, longer")
    second = packages.fetch(f"local://{jar}", ".jar")
    assert second.sha256 != first.sha256 and second.path.read_bytes() == b"second version, longer"
    other = tmp_path / "other.jar"
    other.write_bytes(b"first version")
    assert packages.fetch(other.as_uri(), ".jar") == first  # same bytes, same package


def test_http_packages_come_once_per_content(packages: UriPackages, served: tuple[Path, str]) -> None:
    folder, url = served
    helper = folder / "helper.jar"
    helper.write_bytes(b"helper")
    an_hour_ago = time.time() - 3600  # a Last-Modified well before the answer's Date goes back
    os.utime(helper, (an_hour_ago, an_hour_ago))
    fetched = packages.fetch(f"{url}/helper.jar", ".jar")
    assert fetched.path.read_bytes() == b"helper"
    assert packages.fetch(f"{url}/helper.jar", ".jar") == fetched
    assert ANSWERS[-2:] == [200, 304]  # the second fetch asked whether it changed, and it had not
    helper.write_bytes(b"helper, changed")
    os.utime(helper, (an_hour_ago + 60, an_hour_ago + 60))
    assert packages.fetch(f"{url}/helper.jar", ".jar").path.read_bytes() == b"helper, changed"
    assert ANSWERS[-1] == 200


@pytest.mark.parametrize(
    ("uri", "kind", "message"),
    [
        ("{url}/missing.jar", FAILURE_LOADING, "HTTP 404"),
        ("file:///no/such/dependency.jar", FAILURE_LOADING, "no such file on the driver's host"),
        ("file://otherhost/x.jar", FAILURE_MALFORMED_URL, "names an absolute path on the driver's host"),
        ("dependency.jar", FAILURE_MALFORMED_URL, "not a URI"),
    ],
)
def test_uris_that_cannot_be_loaded_say_why(
    packages: UriPackages, served: tuple[Path, str], uri: str, kind: str, message: str
) -> None:
    with pytest.raises(JobRejected) as rejected:
        packages.fetch(uri.format(url=served[1]), ".jar")
    assert rejected.value.kind == kind
    assert message in str(rejected.value)
