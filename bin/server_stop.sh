#!/usr/bin/env bash
# Stop the job server started by bin/server_start.sh.
#   bin/server_stop.sh                  SIGTERM: stop every context it started (politely, then
#                                       SIGTERM/SIGKILL of each driver), then exit.
#   bin/server_stop.sh --keep-contexts  SIGUSR1: exit but leave the drivers running, for an
#                                       upgrade; the next server on the same work dir re-attaches
#                                       them (within spark.jobserver.driver.server-silence-grace).
set -euo pipefail
pid_file=${JOBSERVER_PID_FILE:-$PWD/jobserver.pid}
timeout_s=${JOBSERVER_STOP_TIMEOUT:-60}
stop_signal=TERM
case "${1:-}" in
  "") ;;
  --keep-contexts) stop_signal=USR1 ;;
  *) echo "usage: $0 [--keep-contexts]" >&2; exit 2 ;;
esac

if [ ! -f "$pid_file" ]; then
  echo "no pid file at $pid_file: is the job server running?" >&2
  exit 1
fi
pid=$(cat "$pid_file")
if ! kill -0 "$pid" 2>/dev/null; then
  echo "job server (pid $pid) is not running; removing the stale pid file"
  rm -f "$pid_file"
  exit 0
fi
kill "-$stop_signal" "$pid"
for _ in $(seq "$timeout_s"); do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pid_file"
    echo "job server stopped"
    exit 0
  fi
  sleep 1
done
echo "job server (pid $pid) still running after ${timeout_s}s; sending SIGKILL" >&2
kill -KILL "$pid" 2>/dev/null || true
rm -f "$pid_file"
exit 1
