#!/usr/bin/env bash
# Operate the job server (spark-jobserver's server.sh):
#   bin/server.sh [-e ENV] start [CONFIG]           start in the background; CONFIG, else
#                                                   $JOBSERVER_CONFIG, else conf/ENV.conf
#   bin/server.sh [-e ENV] stop [--keep-contexts]   stop (keeping the contexts' drivers running)
#   bin/server.sh [-e ENV] restart [--keep-contexts]  stop, then start with the config it ran with
#   bin/server.sh [-e ENV] status                   0 running, 3 not running (LSB)
#   bin/server.sh [-e ENV] health [TIMEOUT_S]       0 once /healthz answers (waiting up to
#                                                   TIMEOUT_S), 1 not, 3 not running
#   bin/server.sh [-e ENV] log [-f]                 the server's log (-f: follow it)
# -e ENV reads conf/ENV.sh (shell settings, see conf/env.sh.template) and takes conf/ENV.conf as
# the config when present. The pid file holds "PID START_TIME CONFIG": a pid that another
# process now has is never signalled.
set -euo pipefail
# shellcheck source=bin/server_common.sh
. "$(dirname "$0")/server_common.sh"

usage() {
  echo "usage: $0 [-e ENV] start [CONFIG] | stop [--keep-contexts] | restart [--keep-contexts] | status | health [TIMEOUT_S] | log [-f]" >&2
  exit 2
}

env_name=''
if [ "${1:-}" = -e ]; then
  [ $# -ge 2 ] || usage
  env_name=$2
  shift 2
fi
load_settings "$env_name"
command=${1:-}
[ $# -eq 0 ] || shift

keep_option() {
  case $# in
    0) echo "" ;;
    1) [ "$1" = --keep-contexts ] || usage; echo --keep-contexts ;;
    *) usage ;;
  esac
}

case $command in
  start)
    [ $# -le 1 ] || usage
    start_server "${1:-}"
    ;;
  stop)
    keep=$(keep_option "$@")
    stop_server ${keep:+"$keep"}
    ;;
  restart)
    keep=$(keep_option "$@")
    read_pid_file
    restart_config=$config
    case $server_state in
      running)
        restart_config=$recorded_config
        stop_server ${keep:+"$keep"} || true # killed after the timeout: gone all the same
        ;;
      stale) forget_stale_pid_file ;;
      stopped) echo "job server not running; starting it" ;;
    esac
    start_server "$restart_config"
    ;;
  status)
    [ $# -eq 0 ] || usage
    server_status
    ;;
  health)
    if [ $# -gt 1 ] || ! [[ "${1:-0}" =~ ^[0-9]+$ ]]; then usage; fi
    read_pid_file
    [ "$server_state" = running ] || { echo "job server not running" >&2; exit 3; }
    probe_health "$recorded_config" "${1:-0}" "$pid"
    ;;
  log)
    [ ! -f "$log_file" ] && { echo "no log at $log_file" >&2; exit 1; }
    case "${1:-}" in
      "") exec tail -n "${JOBSERVER_LOG_LINES:-100}" "$log_file" ;;
      -f) exec tail -n "${JOBSERVER_LOG_LINES:-100}" -F "$log_file" ;;
      *) usage ;;
    esac
    ;;
  *) usage ;;
esac
