#!/usr/bin/env bash
# Start the job server in the background: bin/server_start.sh [CONFIG_FILE]
# Writes its pid to $JOBSERVER_PID_FILE (default ./jobserver.pid) and appends its output to
# $JOBSERVER_LOG_FILE (default ./jobserver.log). Run `make install` once before.
set -euo pipefail
home=$(cd "$(dirname "$0")/.." && pwd)
pid_file=${JOBSERVER_PID_FILE:-$PWD/jobserver.pid}
log_file=${JOBSERVER_LOG_FILE:-$PWD/jobserver.log}
jobserver=${JOBSERVER_BIN:-$home/.venv/bin/jobserver}

if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  echo "job server already running (pid $(cat "$pid_file"))" >&2
  exit 1
fi
[ -x "$jobserver" ] || { echo "$jobserver not found: run 'make install' first" >&2; exit 1; }
if [ $# -gt 0 ] && [ ! -f "$1" ]; then
  echo "config file $1 does not exist" >&2
  exit 1
fi
log_offset=$(($(stat -c %s "$log_file" 2>/dev/null || echo 0) + 1))
nohup "$jobserver" "$@" >>"$log_file" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pid_file"
# Fail here, not later, when the server dies at start-up (bad config, port taken): wait until it
# listens (aiohttp prints "Running on") or exits, for up to $JOBSERVER_START_TIMEOUT_S seconds.
deadline=$((SECONDS + ${JOBSERVER_START_TIMEOUT_S:-60}))
while kill -0 "$pid" 2>/dev/null; do
  if tail -c +"$log_offset" "$log_file" | grep -q "Running on"; then
    echo "job server started (pid $pid), log: $log_file"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "job server started (pid $pid) and is still starting up, log: $log_file"
    exit 0
  fi
  sleep 0.2
done
rm -f "$pid_file"
echo "job server failed to start; last lines of $log_file:" >&2
tail -n 20 "$log_file" >&2
exit 1
