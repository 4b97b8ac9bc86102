"""Driver tokens: a restarted server on the same work dir can check what an earlier one issued."""

from __future__ import annotations

import stat
from pathlib import Path

from jobserver.drivers import tokens


def test_a_token_checks_for_its_context_only_and_under_its_key(tmp_path: Path) -> None:
    key = tokens.load_key(tmp_path / tokens.KEY_FILE)
    token = tokens.issue(key, "ctx-1")
    assert tokens.verify(key, "ctx-1", token)
    assert not tokens.verify(key, "ctx-2", token)
    assert not tokens.verify(b"another key" * 3, "ctx-1", token)
    assert not tokens.verify(key, "ctx-1", token + "0")
    assert not tokens.verify(key, "ctx-1", "")
    assert not tokens.verify(key, "ctx-1", "no-dot")
    assert tokens.issue(key, "ctx-1") != token, "every launch gets its own token"


def test_the_key_is_created_once_private_and_read_back_by_a_later_server(tmp_path: Path) -> None:
    first = tokens.load_key(tmp_path / tokens.KEY_FILE)
    path = tmp_path / tokens.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tokens.load_key(tmp_path / tokens.KEY_FILE) == first
    assert len(first) == 32
    assert [entry.name for entry in tmp_path.iterdir()] == [tokens.KEY_FILE], "no temporary file left"
