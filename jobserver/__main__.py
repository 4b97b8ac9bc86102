"""``jobserver [CONFIG_FILE]``: run the job server in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from jobserver.config import load_settings
from jobserver.errors import ConfigError
from jobserver.logs import configure_logging
from jobserver.web.app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobserver", description="Spark Job Server for Python")
    parser.add_argument("config_file", nargs="?", help="HOCON file layered over conf/defaults.conf")
    arguments = parser.parse_args(argv)
    configure_logging()
    try:
        settings = load_settings(arguments.config_file)
    except ConfigError as error:
        print(f"jobserver: {error}", file=sys.stderr)
        return 2
    web.run_app(
        create_app(settings),
        host=settings.bind_address,
        port=settings.port,
        print=lambda text: print(text, file=sys.stderr),
        access_log=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
