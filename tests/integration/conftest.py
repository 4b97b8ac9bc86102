"""Fixtures of the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deployment import build_package


@pytest.fixture(scope="session")
def server_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package of bin/server_package.sh (450 MB, mostly pyspark), built once per session."""
    return build_package(tmp_path_factory.mktemp("dist"))
