"""What every ``jobserver-cli`` command shares: exit statuses, the command type, the table and
JSON printers, and the subcommand registration."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from jobserver_client.client import JobServerClient

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_SERVER = 0, 1, 2, 3

Command = Callable[[JobServerClient, argparse.Namespace, TextIO], int]


class UsageError(Exception):
    """Flags that contradict each other: the message says how; the exit status is EXIT_USAGE."""


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], out: TextIO) -> None:
    """Columns as wide as their widest cell, a rule under the header."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[index]) for row in cells)]) for index, name in enumerate(header)]
    for row in [list(header), ["-" * width for width in widths], *cells]:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n"
        )


def show(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def action(group: Any, name: str, command: Command, help_text: str, **more: Any) -> argparse.ArgumentParser:
    """A subcommand ``name`` of ``group`` (an ``add_subparsers`` result) that runs ``command``."""
    sub: argparse.ArgumentParser = group.add_parser(name, help=help_text, **more)
    sub.set_defaults(command=command)
    return sub
