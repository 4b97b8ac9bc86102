#!/usr/bin/env bash
# Start the job server in the background: bin/server_start.sh [CONFIG_FILE]
# The same as `bin/server.sh start [CONFIG_FILE]`: writes "PID START_TIME CONFIG" to
# $JOBSERVER_PID_FILE (default ./jobserver.pid) and appends its output to $JOBSERVER_LOG_FILE
# (default ./jobserver.log). Run `make install` once before.
exec "$(dirname "$0")/server.sh" start "$@"
