"""Packages a job names by URI (its ``dependent-jar-uris``, or URIs in its cp), fetched by the driver.

Each is fetched into the context's folder and named by the sha256 of what arrived, so two
packages are the same only when their bytes are, whatever their URIs. How a URI is read:

* ``file:`` and ``local:``: the file on this driver's host (``local:`` means a file present on
  every host, as in Spark). The file is copied and the copy hashed; the copy is what runs.
* ``http:`` and ``https:``: downloaded with ``urllib``, at most ``MAX_DOWNLOAD_BYTES`` within
  ``DOWNLOAD_TIMEOUT_S``.
* any other scheme (``hdfs:``, ``s3a:``, ``viewfs:``, …): through Hadoop's ``FileSystem`` API in
  the driver's JVM, with the context's Hadoop configuration (its ``hadoop { … }`` settings).

A URI is fetched again only when what it names may have changed, by a quick check as ``make``
and ``rsync`` do: a local file's device, inode, size and change times (a rewrite of the same size
within one tick of the file system's clock goes unseen); an HTTP answer's ``ETag`` or
``Last-Modified``, sent back as a conditional request (``304``: unchanged; a server that sends
neither, or a Last-Modified less than a second before its Date, is asked for the whole file every
time); a Hadoop file's length and modification time.

Failures are the contract's loading errors: a URI this driver cannot understand (no scheme, a
scheme no file system serves, an HDFS URI without a host) is ``FAILURE_MALFORMED_URL``, one it
cannot read (missing, unreachable, refused, too large, too slow) ``FAILURE_LOADING``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Hashable
from dataclasses import dataclass
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast
from urllib.parse import unquote, urlsplit

from driver.jobbase import JobRejected
from driver.protocol import FAILURE_LOADING, FAILURE_MALFORMED_URL, error_map

if TYPE_CHECKING:
    from pyspark import SparkContext

# Largest package the driver downloads over HTTP or copies from a Hadoop file system.
MAX_DOWNLOAD_BYTES = 1 << 30
# The time one package's HTTP download may take, all of it.
DOWNLOAD_TIMEOUT_S = 60.0

LOCAL_SCHEMES = frozenset({"file", "local"})
HTTP_SCHEMES = frozenset({"http", "https"})
# Hadoop's failures that mean "this URI names nothing a file system could serve".
_HADOOP_MALFORMED = (
    "org.apache.hadoop.fs.UnsupportedFileSystemException",
    "java.lang.IllegalArgumentException",
    "java.net.URISyntaxException",
)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A URI's content in the context's folder: ``<sha256><suffix>``."""

    sha256: str
    path: Path


class UriPackages:
    def __init__(self, spark_context: SparkContext, *, folder: Path) -> None:
        self._spark_context = spark_context
        self._folder = folder
        # uri -> (what the quick check saw, what was fetched then)
        self._seen: dict[str, tuple[Hashable, Fetched]] = {}

    def fetch(self, uri: str, suffix: str) -> Fetched:
        """The URI's current content as a local file named by its sha256; raises JobRejected."""
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if not scheme:
            raise malformed(f"cannot load {uri}: not a URI")
        self._folder.mkdir(parents=True, exist_ok=True)
        if scheme in LOCAL_SCHEMES:
            return self._fetch_local(uri, _local_path(uri), suffix)
        if scheme in HTTP_SCHEMES:
            return self._fetch_http(uri, suffix)
        return self._fetch_hadoop(uri, suffix)

    def _unchanged(self, uri: str, seen: Hashable) -> Fetched | None:
        earlier = self._seen.get(uri)
        if earlier is not None and earlier[0] == seen and earlier[1].path.exists():
            return earlier[1]
        return None

    def _fetch_local(self, uri: str, source: Path, suffix: str) -> Fetched:
        try:
            stat = source.stat()
            seen = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            fetched = self._unchanged(uri, seen)
            if fetched is None:
                with open(source, "rb") as stream:
                    fetched = self._store(stream, suffix, uri)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise JobRejected(
                FAILURE_LOADING, f"cannot load {uri}: no such file on the driver's host"
            ) from None
        except PermissionError:
            raise JobRejected(FAILURE_LOADING, f"cannot load {uri}: not readable by the driver") from None
        self._seen[uri] = (seen, fetched)
        return fetched

    def _fetch_http(self, uri: str, suffix: str) -> Fetched:
        earlier = self._seen.get(uri)
        request = urllib.request.Request(uri)
        if earlier is not None and earlier[1].path.exists():
            etag, modified = cast("tuple[str | None, str | None]", earlier[0])
            if etag:
                request.add_header("If-None-Match", etag)
            if modified:
                request.add_header("If-Modified-Since", modified)
        try:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > MAX_DOWNLOAD_BYTES:
                    raise _too_large(uri)
                fetched = self._store(response, suffix, uri, deadline=time.monotonic() + DOWNLOAD_TIMEOUT_S)
                seen = (response.headers.get("ETag"), _safe_last_modified(response.headers))
        except urllib.error.HTTPError as error:
            if error.code == 304 and earlier is not None:
                return earlier[1]
            raise JobRejected(
                FAILURE_LOADING, f"cannot load {uri}: HTTP {error.code} {error.reason}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise JobRejected(FAILURE_LOADING, f"cannot load {uri}: {reason}") from None
        self._seen[uri] = (seen, fetched)
        return fetched

    def _fetch_hadoop(self, uri: str, suffix: str) -> Fetched:
        from py4j.protocol import Py4JError, Py4JJavaError

        jvm = self._spark_context._jvm
        assert jvm is not None
        scratch = Path(tempfile.mkdtemp(dir=self._folder, prefix="fetch-"))
        try:
            path = jvm.org.apache.hadoop.fs.Path(uri)
            file_system = path.getFileSystem(self._spark_context._jsc.hadoopConfiguration())
            status = file_system.getFileStatus(path)
            if status.isDirectory():  # its length says 0: it would be copied whole, then refused
                raise JobRejected(FAILURE_LOADING, f"cannot load {uri}: a directory, not a file")
            seen = (status.getLen(), status.getModificationTime())
            fetched = self._unchanged(uri, seen)
            if fetched is None:
                if status.getLen() > MAX_DOWNLOAD_BYTES:
                    raise _too_large(uri)
                local = scratch / "content"
                # The raw local file system: no .crc file beside the copy.
                file_system.copyToLocalFile(False, path, jvm.org.apache.hadoop.fs.Path(local.as_uri()), True)
                with open(local, "rb") as stream:
                    fetched = self._store(stream, suffix, uri)
        except Py4JJavaError as error:
            raise _hadoop_rejection(uri, error) from None
        except (Py4JError, OSError) as error:
            raise JobRejected(FAILURE_LOADING, f"cannot load {uri}: {error}") from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._seen[uri] = (seen, fetched)
        return fetched

    def _store(self, stream: BinaryIO, suffix: str, uri: str, *, deadline: float | None = None) -> Fetched:
        """Copy ``stream`` into the folder, hashing as it goes, as ``<sha256><suffix>``."""
        descriptor, name = tempfile.mkstemp(dir=self._folder, prefix="fetch-", suffix=".part")
        partial = Path(name)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(descriptor, "wb") as output:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    size += len(block)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise _too_large(uri)
                    if deadline is not None and time.monotonic() > deadline:
                        message = f"cannot load {uri}: not downloaded within {DOWNLOAD_TIMEOUT_S:.0f} s"
                        raise JobRejected(FAILURE_LOADING, message)
                    digest.update(block)
                    output.write(block)
            sha256 = digest.hexdigest()
            target = self._folder / f"{sha256}{suffix}"
            if target.exists():
                partial.unlink()
            else:
                partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return Fetched(sha256, target)


def _local_path(uri: str) -> Path:
    """The path a ``file:`` or ``local:`` URI names on this host (``file:/p``, ``file:///p``,
    ``file://localhost/p``); a URI naming another host is malformed here."""
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise malformed(
            f"cannot load {uri}: a {parts.scheme}: URI names an absolute path on the driver's host "
            f"({parts.scheme}:///path)"
        )
    return Path(unquote(parts.path))


def _safe_last_modified(headers: Message) -> str | None:
    """An answer's Last-Modified, if it may be sent back in If-Modified-Since: only when it is at
    least a second older than the answer's Date (RFC 9110 8.8.2.2), since a file changed twice
    within one second keeps its Last-Modified."""
    modified, date = headers.get("Last-Modified"), headers.get("Date")
    try:
        if (
            modified
            and date
            and (parsedate_to_datetime(date) - parsedate_to_datetime(modified)).total_seconds() >= 1
        ):
            return modified
    except (TypeError, ValueError):
        pass
    return None


def malformed(message: str) -> JobRejected:
    """spark-jobserver's ``JOB LOADING FAILED: Malformed URL``, with the JVM's error class."""
    return JobRejected(FAILURE_MALFORMED_URL, message, error_map(message, "java.net.MalformedURLException"))


def _too_large(uri: str) -> JobRejected:
    return JobRejected(FAILURE_LOADING, f"cannot load {uri}: larger than {MAX_DOWNLOAD_BYTES} bytes")


def _hadoop_rejection(uri: str, error: Exception) -> JobRejected:
    java_error = getattr(error, "java_exception", None)
    error_class = str(java_error.getClass().getName()) if java_error is not None else ""
    message = str(java_error.getMessage()) if java_error is not None else str(error)
    if error_class in _HADOOP_MALFORMED or message.startswith("Incomplete HDFS URI"):
        return malformed(f"cannot load {uri}: {message}")
    return JobRejected(FAILURE_LOADING, f"cannot load {uri}: {error_class}: {message}")
