"""The layering rules of the house (DESIGN.md "Layout"), checked by import-linter against .importlinter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_import_rules_of_the_house_are_kept() -> None:
    # jobserver's packages are layers; the storage backends and the route modules stand alone;
    # driver never imports jobserver, which takes only driver.protocol from it; only jobserver.web
    # imports aiohttp. The contracts themselves live in .importlinter.
    assert (REPOSITORY_ROOT / ".importlinter").is_file()
    finished = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, f"lint-imports failed:\n{output}"
    assert "0 broken" in output
