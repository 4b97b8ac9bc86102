"""``jobserver [CONFIG_FILE]``: run the job server in the foreground until SIGINT or SIGTERM.

SIGINT and SIGTERM stop every context first. SIGUSR1 (``bin/server_stop.sh --keep-contexts``)
stops the server but leaves the drivers running, for a new server process to re-attach.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from aiohttp import web

from jobserver.config import load_settings
from jobserver.errors import ConfigError
from jobserver.logs import configure_logging
from jobserver.web.app import create_app
from jobserver.web.keys import SERVER


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
    app = create_app(settings)
    app.on_startup.append(_stop_keeping_contexts_on_sigusr1)
    web.run_app(
        app,
        host=settings.bind_address,
        port=settings.port,
        print=lambda text: print(text, file=sys.stderr),
        access_log=None,
    )
    return 0


async def _stop_keeping_contexts_on_sigusr1(app: web.Application) -> None:
    def keep_contexts_and_stop() -> None:
        app[SERVER].keep_contexts = True
        os.kill(os.getpid(), signal.SIGTERM)  # then stop as aiohttp stops on SIGTERM

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, keep_contexts_and_stop)


if __name__ == "__main__":
    sys.exit(main())
