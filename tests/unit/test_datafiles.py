"""Data files (/data, contract §2.4): stored inside one folder, whatever name a request brings."""

from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jobserver.common.errors import BadRequest, PayloadTooLarge
from jobserver.uploads.datafiles import DataFiles

MAX_UPLOAD_BYTES = 64
STORED_NAME = re.compile(r"^(?P<prefix>.+)-\d{4}-\d\d-\d\dT\d\d_\d\d_\d\d\.\d{3}(Z|[+-]\d\d_\d\d)\.dat$")


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def broken_body() -> AsyncIterator[bytes]:
    yield b"first part"
    raise ConnectionResetError("client went away")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The data folder, two levels down so that an escape by ``..`` would land in ``tmp_path``."""
    return tmp_path / "work" / "data"


@pytest.fixture
def data_files(folder: Path) -> DataFiles:
    return DataFiles(folder, max_upload_bytes=MAX_UPLOAD_BYTES)


@pytest.fixture
def india_server_zone() -> Iterator[None]:
    original = os.environ.get("TZ")
    os.environ["TZ"] = "IST-5:30"  # POSIX sign: +05:30
    time.tzset()
    try:
        yield
    finally:
        if original is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = original
        time.tzset()


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def frozen_at(folder: Path, moment: datetime.datetime) -> DataFiles:
    """Data files whose clock always reads ``moment``."""
    return DataFiles(folder, max_upload_bytes=MAX_UPLOAD_BYTES, clock=lambda: moment)


# --- storing -------------------------------------------------------------------------------------


async def test_stored_file_is_named_prefix_and_upload_time_inside_the_folder(
    data_files: DataFiles, folder: Path
) -> None:
    stored = Path(await data_files.store("x.txt", body(b"hello ", b"world")))
    assert stored.parent == folder
    match = STORED_NAME.match(stored.name)
    assert match, stored.name
    assert match["prefix"] == "x.txt"
    assert stored.read_bytes() == b"hello world"


async def test_stored_name_embeds_the_job_time_with_underscores_for_colons(
    folder: Path, india_server_zone: None
) -> None:
    data_files = frozen_at(folder, datetime.datetime(2016, 7, 4, 3, 39, 57, 928_000, tzinfo=datetime.UTC))
    stored = await data_files.store("x.txt", body(b"data"))
    assert stored == str(folder / "x.txt-2016-07-04T09_09_57.928+05_30.dat")


async def test_store_creates_the_folder_when_missing(data_files: DataFiles, folder: Path) -> None:
    assert not folder.exists()
    await data_files.store("a", body(b"1"))
    assert folder.is_dir()


async def test_empty_body_is_stored_as_an_empty_file(data_files: DataFiles) -> None:
    stored = Path(await data_files.store("empty", body()))
    assert stored.read_bytes() == b""


async def test_listing_shows_the_full_paths_of_stored_files(data_files: DataFiles) -> None:
    first = await data_files.store("a", body(b"1"))
    second = await data_files.store("b", body(b"2"))
    assert data_files.list() == sorted([first, second])


def test_listing_of_a_missing_folder_is_empty(data_files: DataFiles) -> None:
    assert data_files.list() == []


async def test_listing_hides_hidden_files_and_folders(data_files: DataFiles, folder: Path) -> None:
    stored = await data_files.store("a", body(b"1"))
    (folder / ".upload-leftover").write_bytes(b"partial")
    (folder / "subfolder").mkdir()
    assert data_files.list() == [stored]


@pytest.mark.parametrize(
    "prefix",
    [
        "..",
        ".",
        "",
        "/",
        "../../x",
        "../../../../../../tmp/escaped",
        "/etc/passwd",
        "..\\..\\windows",
        "x/..",
        "name\0with-nul",
        "name\nwith-newline",
        "name\rwith-return",
        ".x",
        "../.hidden",
    ],
    ids=repr,
)
async def test_hostile_prefix_never_writes_outside_the_folder(
    data_files: DataFiles, folder: Path, tmp_path: Path, prefix: str
) -> None:
    try:
        stored = Path(await data_files.store(prefix, body(b"payload")))
    except BadRequest as refused:
        assert refused.http_status == 400
        assert refused.message == f"Failed to store data file '{prefix}'."
        assert files_under(tmp_path) == set()
    else:
        assert stored.parent == folder
        assert STORED_NAME.match(stored.name)
        assert not stored.name.startswith(".")
        assert files_under(tmp_path) == {stored}


@pytest.mark.parametrize("prefix", ["..", "name\0x", "name\nx", ".x", ""], ids=repr)
async def test_prefix_that_is_no_plain_name_is_refused(data_files: DataFiles, prefix: str) -> None:
    with pytest.raises(BadRequest, match="Failed to store data file"):
        await data_files.store(prefix, body(b"payload"))


@pytest.mark.parametrize(
    ("prefix", "plain_name"),
    [("../../x", "x"), ("/etc/passwd", "passwd"), ("..\\..\\windows", "windows"), ("dir/", "dir")],
)
async def test_prefix_with_a_path_is_reduced_to_its_last_name(
    data_files: DataFiles, folder: Path, prefix: str, plain_name: str
) -> None:
    stored = Path(await data_files.store(prefix, body(b"payload")))
    assert stored.parent == folder
    match = STORED_NAME.match(stored.name)
    assert match
    assert match["prefix"] == plain_name


async def test_body_larger_than_the_limit_is_refused_and_leaves_no_file(
    data_files: DataFiles, folder: Path
) -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        await data_files.store("big", body(b"x" * 40, b"x" * 40))
    assert refused.value.http_status == 413
    assert list(folder.iterdir()) == []


async def test_body_of_exactly_the_limit_is_stored(data_files: DataFiles) -> None:
    stored = Path(await data_files.store("full", body(b"x" * (MAX_UPLOAD_BYTES - 1), b"x")))
    assert stored.stat().st_size == MAX_UPLOAD_BYTES


async def test_body_that_breaks_off_leaves_no_file(data_files: DataFiles, folder: Path) -> None:
    with pytest.raises(ConnectionResetError):
        await data_files.store("partial", broken_body())
    assert list(folder.iterdir()) == []


async def test_two_uploads_in_the_same_millisecond_are_both_kept(folder: Path) -> None:
    data_files = frozen_at(folder, datetime.datetime(2024, 1, 1, 12, 0, 0, 5_000, tzinfo=datetime.UTC))
    first = await data_files.store("input.csv", body(b"first upload"))
    second = await data_files.store("input.csv", body(b"second upload"))
    assert first != second
    assert Path(first).read_bytes() == b"first upload"
    assert Path(second).read_bytes() == b"second upload"


async def test_overlong_prefix_is_refused_as_a_bad_request(data_files: DataFiles, folder: Path) -> None:
    try:
        with pytest.raises(BadRequest):
            await data_files.store("x" * 300, body(b"payload"))
    finally:
        assert list(folder.iterdir()) == []


# --- deleting and finding ------------------------------------------------------------------------


async def test_stored_file_is_deleted_by_the_path_the_listing_shows(data_files: DataFiles) -> None:
    stored = await data_files.store("a", body(b"1"))
    data_files.delete(stored)
    assert not Path(stored).exists()
    assert data_files.list() == []


async def test_stored_file_is_deleted_by_its_bare_name(data_files: DataFiles) -> None:
    stored = Path(await data_files.store("a", body(b"1")))
    data_files.delete(stored.name)
    assert not stored.exists()


async def test_deleting_an_unknown_file_is_a_bad_request_with_the_contract_message(
    data_files: DataFiles,
) -> None:
    await data_files.store("a", body(b"1"))
    with pytest.raises(BadRequest) as refused:
        data_files.delete("never-uploaded.dat")
    assert refused.value.http_status == 400
    assert refused.value.envelope() == {
        "status": "ERROR",
        "result": "Unable to delete data file 'never-uploaded.dat'.",
    }


async def test_a_name_longer_than_a_file_name_may_be_is_unknown_not_an_error(
    data_files: DataFiles, folder: Path
) -> None:
    await data_files.store("a", body(b"1"))  # the folder exists: the file system is asked
    name = "x" * 5000  # looking it up fails with ENAMETOOLONG, which is no missing file
    with pytest.raises(BadRequest, match=f"^Unable to delete data file '{name}'\\.$"):
        data_files.delete(name)
    assert data_files.path_of(name) is None
    assert data_files.path_of(f"{folder}/{name}") is None


def test_deleting_from_a_missing_folder_is_a_bad_request(data_files: DataFiles) -> None:
    with pytest.raises(BadRequest, match=r"^Unable to delete data file 'a\.dat'\.$"):
        data_files.delete("a.dat")


async def test_delete_refuses_an_absolute_path_outside_the_folder(
    data_files: DataFiles, tmp_path: Path
) -> None:
    await data_files.store("a", body(b"1"))
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me")
    with pytest.raises(BadRequest, match=re.escape(f"Unable to delete data file '{outside}'.")):
        data_files.delete(str(outside))
    assert outside.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "escape",
    ["../precious.txt", "../../precious.txt", "{folder}/../../precious.txt", "..", "."],
)
async def test_delete_never_reaches_outside_the_folder(
    data_files: DataFiles, folder: Path, tmp_path: Path, escape: str
) -> None:
    await data_files.store("a", body(b"1"))
    for target in (tmp_path / "precious.txt", tmp_path / "work" / "precious.txt"):
        target.write_bytes(b"keep me")
    filename = escape.format(folder=folder)
    with pytest.raises(BadRequest, match=re.escape(f"Unable to delete data file '{filename}'.")):
        data_files.delete(filename)
    assert (tmp_path / "precious.txt").read_bytes() == b"keep me"
    assert (tmp_path / "work" / "precious.txt").read_bytes() == b"keep me"
    assert folder.is_dir()


async def test_delete_refuses_a_same_named_file_in_another_folder(
    data_files: DataFiles, tmp_path: Path
) -> None:
    stored = Path(await data_files.store("a", body(b"1")))
    other = tmp_path / "other"
    other.mkdir()
    (other / stored.name).write_bytes(b"not ours")
    with pytest.raises(BadRequest):
        data_files.delete(str(other / stored.name))
    assert stored.exists()
    assert (other / stored.name).exists()


async def test_delete_refuses_hidden_files_and_folders_inside(data_files: DataFiles, folder: Path) -> None:
    await data_files.store("a", body(b"1"))
    (folder / ".upload-abc").write_bytes(b"partial")
    (folder / "subfolder").mkdir()
    for name in (".upload-abc", str(folder / ".upload-abc"), "subfolder", str(folder / "subfolder")):
        with pytest.raises(BadRequest):
            data_files.delete(name)
    assert (folder / ".upload-abc").exists()
    assert (folder / "subfolder").is_dir()


async def test_path_of_finds_a_stored_file_by_listed_path_or_name(
    data_files: DataFiles, folder: Path
) -> None:
    stored = Path(await data_files.store("a", body(b"1")))
    assert data_files.path_of(str(stored)) == folder.resolve() / stored.name
    assert data_files.path_of(stored.name) == folder.resolve() / stored.name


async def test_path_of_finds_nothing_outside_or_unknown(data_files: DataFiles, tmp_path: Path) -> None:
    await data_files.store("a", body(b"1"))
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me")
    assert data_files.path_of(str(outside)) is None
    assert data_files.path_of("../../precious.txt") is None
    assert data_files.path_of("never-uploaded.dat") is None


# --- reset ---------------------------------------------------------------------------------------


async def test_reset_empties_the_folder(data_files: DataFiles, folder: Path) -> None:
    await data_files.store("a", body(b"1"))
    await data_files.store("b", body(b"2"))
    (folder / "nested").mkdir()
    (folder / "nested" / "c").write_bytes(b"3")
    data_files.reset()
    assert folder.is_dir()
    assert list(folder.iterdir()) == []
    assert data_files.list() == []


def test_reset_of_a_missing_folder_creates_it_empty(data_files: DataFiles, folder: Path) -> None:
    data_files.reset()
    assert folder.is_dir()
    assert list(folder.iterdir()) == []


async def test_reset_leaves_files_beside_the_folder_alone(data_files: DataFiles, tmp_path: Path) -> None:
    neighbour = tmp_path / "work" / "metadata.db"
    await data_files.store("a", body(b"1"))
    neighbour.write_bytes(b"keep me")
    data_files.reset()
    assert neighbour.read_bytes() == b"keep me"
