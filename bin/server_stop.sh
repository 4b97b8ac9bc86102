#!/usr/bin/env bash
# Stop the job server started by bin/server_start.sh. SIGTERM makes it stop every context it
# started (politely, then SIGTERM/SIGKILL of each driver) before it exits.
set -euo pipefail
pid_file=${JOBSERVER_PID_FILE:-$PWD/jobserver.pid}
timeout_s=${JOBSERVER_STOP_TIMEOUT:-60}

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
kill -TERM "$pid"
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
