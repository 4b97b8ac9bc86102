#!/usr/bin/env bash
# Stop the job server started by bin/server_start.sh (or bin/server.sh start).
#   bin/server_stop.sh                  SIGTERM: stop every context it started (politely, then
#                                       SIGTERM/SIGKILL of each driver), then exit.
#   bin/server_stop.sh --keep-contexts  SIGUSR1: exit but leave the drivers running, for an
#                                       upgrade; the next server on the same work dir re-attaches
#                                       them (within spark.jobserver.driver.server-silence-grace).
# The same as `bin/server.sh stop [--keep-contexts]`.
exec "$(dirname "$0")/server.sh" stop "$@"
