"""``jobserver [CONFIG_FILE]``: run the job server in the foreground until SIGINT or SIGTERM.

SIGINT and SIGTERM stop every context first. SIGUSR1 (``bin/server_stop.sh --keep-contexts``)
stops the server but leaves the drivers running, for a new server process to re-attach.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import os
import signal
import sys

import structlog
from aiohttp import web

from jobserver.common.config import Settings, load_settings
from jobserver.common.errors import ConfigError
from jobserver.logs import configure_logging
from jobserver.web.app import create_app
from jobserver.web.keys import SERVER
from jobserver.web.tls import server_ssl_context

log = structlog.get_logger(__name__)

# Collections of the young generation every 20,000 allocations, and of the older ones every 20 of
# those; CPython's defaults are (700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobserver", description="Spark Job Server for Python")
    parser.add_argument("config_file", nargs="?", help="HOCON file layered over conf/defaults.conf")
    arguments = parser.parse_args(argv)
    # Every file the server and its drivers write (metadata, logs, blobs, data files, keys) is
    # for the server's user alone.
    os.umask(0o077)
    configure_logging()
    try:
        settings = load_settings(arguments.config_file)
        app = create_app(settings)
        ssl_context = server_ssl_context(settings.tls)
    except ConfigError as error:
        print(f"jobserver: {error}", file=sys.stderr)
        return 2
    _warn_when_open(settings)
    app.on_startup.append(_stop_keeping_contexts_on_sigusr1)
    app.on_startup.append(_collect_garbage_less_often)  # after the server has started
    web.run_app(
        app,
        host=settings.bind_address,
        port=settings.port,
        ssl_context=ssl_context,
        print=lambda text: print(text, file=sys.stderr),
        access_log=None,
    )
    return 0


def _warn_when_open(settings: Settings) -> None:
    """Authentication off on an address others can reach: say so where nobody can miss it."""
    if settings.auth.enabled or _is_loopback(settings.bind_address):
        return
    banner = "=" * 78
    lines = (
        "WARNING: authentication is OFF (spark.jobserver.auth.mechanisms = none) and the REST API",
        f"listens on {settings.bind_address}:{settings.port}: anyone who can reach this port can run",
        "code as this server's user. Turn it on or bind to 127.0.0.1; see docs/security.md.",
    )
    print(banner, *lines, banner, sep="\n", file=sys.stderr)
    log.warning("authentication_off", bind_address=settings.bind_address, port=settings.port)


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


async def _collect_garbage_less_often(app: web.Application) -> None:
    # Every request allocates a few hundred objects: at CPython's default threshold (700) a
    # young-generation collection ran every other request, and a full one over everything
    # loaded at start-up every few hundred, on the requests' way. Start-up's objects live as long
    # as the server: they leave the collector's view.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _stop_keeping_contexts_on_sigusr1(app: web.Application) -> None:
    def keep_contexts_and_stop() -> None:
        app[SERVER].keep_contexts = True
        os.kill(os.getpid(), signal.SIGTERM)  # then stop as aiohttp stops on SIGTERM

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, keep_contexts_and_stop)


if __name__ == "__main__":
    sys.exit(main())
