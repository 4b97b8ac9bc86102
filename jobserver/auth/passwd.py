"""``jobserver-passwd FILE NAME [--groups a,b] [--delete]``: add a user to a users file, change its
password (asked twice on a terminal, or read from standard input's first line) and groups, or
remove it; the file is written again atomically, readable by its owner alone."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
from pathlib import Path

from jobserver.auth.users_file import hash_password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobserver-passwd", description=__doc__)
    parser.add_argument("file", type=Path, help="users file (spark.jobserver.auth.basic.users-file)")
    parser.add_argument("name", help="user name (no ':')")
    parser.add_argument(
        "--groups", default=None, help="comma-separated groups, for permissions.groups (default: unchanged)"
    )
    parser.add_argument("--delete", action="store_true", help="remove the user instead")
    arguments = parser.parse_args(argv)
    if not arguments.name or ":" in arguments.name or ":" in (arguments.groups or ""):
        parser.error("user names and groups may not contain ':'")
    lines = arguments.file.read_text(encoding="utf-8").splitlines() if arguments.file.exists() else []
    kept = [line for line in lines if line.partition(":")[0].strip() != arguments.name]
    groups = arguments.groups
    if groups is None:  # a new password keeps the user's groups
        previous = [line.split(":", 2) for line in lines if line.partition(":")[0].strip() == arguments.name]
        groups = previous[-1][2] if previous and len(previous[-1]) == 3 else ""
    if not arguments.delete:
        password = _password()
        if not password:
            parser.error("an empty password is not allowed")
        entry = f"{arguments.name}:{hash_password(password)}"
        kept.append(f"{entry}:{groups}" if groups else entry)
    _write(arguments.file, "".join(f"{line}\n" for line in kept))
    return 0


def _password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("jobserver-passwd: the passwords differ")
    return first


def _write(path: Path, text: str) -> None:
    path = path.resolve()
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


if __name__ == "__main__":
    sys.exit(main())
