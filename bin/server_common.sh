#!/usr/bin/env bash
# What bin/server.sh, server_start.sh and server_stop.sh share; sourced, not run.
#
# Two layouts:
#   a checkout     HOME is the repository; the server is .venv/bin/jobserver; the pid and log files
#                  default to the current directory (./jobserver.pid, ./jobserver.log).
#   an install     HOME is INSTALL_DIR/releases/<release> (made by install.sh); the server is
#                  HOME/venv/bin/jobserver; the pid file, the log and the server's working
#                  directory (where a relative work-dir lives) are INSTALL_DIR's, shared by every
#                  release, so that a new release finds the running server and its drivers.
# Settings, in this order (a later one wins): HOME/settings.sh, then with `-e ENV` the env file
# conf/ENV.sh (see conf/env.sh.template for every variable and its default).

jobserver_home=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
if [ "$(basename "$(dirname "$jobserver_home")")" = releases ]; then
  jobserver_root=$(dirname "$(dirname "$jobserver_home")")
  jobserver_installed=true
else
  jobserver_root=$jobserver_home
  jobserver_installed=false
fi

# load_settings [ENV]: settings.sh, the env file, then the defaults of what is still unset.
load_settings() {
  local env_name=${1:-}
  if [ -f "$jobserver_home/settings.sh" ]; then
    # shellcheck source=/dev/null
    . "$jobserver_home/settings.sh"
  fi
  local conf_dir=${JOBSERVER_CONF_DIR:-$jobserver_home/conf}
  if [ -n "$env_name" ]; then
    if [ ! -f "$conf_dir/$env_name.sh" ] && [ ! -f "$conf_dir/$env_name.conf" ]; then
      echo "no environment '$env_name': neither $conf_dir/$env_name.sh nor $conf_dir/$env_name.conf exists" >&2
      exit 2
    fi
    if [ -f "$conf_dir/$env_name.sh" ]; then
      # shellcheck source=/dev/null
      . "$conf_dir/$env_name.sh"
    fi
    if [ -z "${JOBSERVER_CONFIG:-}" ] && [ -f "$conf_dir/$env_name.conf" ]; then
      JOBSERVER_CONFIG=$conf_dir/$env_name.conf
    fi
  fi
  if [ "$jobserver_installed" = true ]; then
    unset PYTHONPATH PYTHONHOME # the release's venv alone, whoever calls
    pid_file=${JOBSERVER_PID_FILE:-$jobserver_root/jobserver.pid}
    log_file=${JOBSERVER_LOG_FILE:-$jobserver_root/jobserver.log}
    run_dir=${JOBSERVER_RUN_DIR:-$jobserver_root}
    jobserver=${JOBSERVER_BIN:-$jobserver_home/venv/bin/jobserver}
    if [ -z "${JOBSERVER_CONFIG:-}" ] && [ -f "$jobserver_home/jobserver.conf" ]; then
      JOBSERVER_CONFIG=$jobserver_home/jobserver.conf
    fi
  else
    pid_file=${JOBSERVER_PID_FILE:-$PWD/jobserver.pid}
    log_file=${JOBSERVER_LOG_FILE:-$PWD/jobserver.log}
    run_dir=${JOBSERVER_RUN_DIR:-$PWD}
    jobserver=${JOBSERVER_BIN:-$jobserver_home/.venv/bin/jobserver}
  fi
  config=${JOBSERVER_CONFIG:-}
  start_timeout_s=${JOBSERVER_START_TIMEOUT_S:-60}
  stop_timeout_s=${JOBSERVER_STOP_TIMEOUT:-60}
  # Spark's launcher reads these; settings.sh and env files may set them without `export`.
  [ -z "${JAVA_HOME:-}" ] || export JAVA_HOME
  [ -z "${SPARK_HOME:-}" ] || export SPARK_HOME
  [ -z "${HADOOP_CONF_DIR:-}" ] || export HADOOP_CONF_DIR
  [ -z "${YARN_CONF_DIR:-}" ] || export YARN_CONF_DIR
}

# start_time PID: field 22 of /proc/PID/stat (clock ticks after boot). The command name (field 2)
# may hold spaces and parentheses, so the fields are counted after its last ')'.
start_time() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[19]}"
}

# read_pid_file: sets pid, recorded_config and server_state: running | stopped | stale.
# A pid whose process started at another time than recorded is not our server (the system gave
# the number to another process): the file is stale and that process is never signalled.
read_pid_file() {
  pid='' recorded_start='' recorded_config=''
  if [ ! -f "$pid_file" ]; then
    server_state=stopped
    return
  fi
  read -r pid recorded_start recorded_config <"$pid_file" || true
  local actual_start
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! actual_start=$(start_time "$pid"); then
    server_state=stale
  elif [ -n "$recorded_start" ]; then
    if [ "$actual_start" = "$recorded_start" ]; then server_state=running; else server_state=stale; fi
  elif tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q jobserver; then
    server_state=running # a pid file of an earlier release: the pid alone, checked by name
  else
    server_state=stale
  fi
}

# forget_stale_pid_file: says so and removes it, leaving whatever process has that pid alone.
forget_stale_pid_file() {
  echo "stale pid file $pid_file (pid $pid is not the job server it recorded); removing it" >&2
  rm -f "$pid_file"
}

# server_python: the interpreter of the server's environment (for the health probe).
server_python() {
  echo "$(dirname "$jobserver")/python"
}

# probe_health CONFIG TIMEOUT_S PID: prints the /healthz URL and whether it answers 200, trying
# until TIMEOUT_S has passed (0: once) or process PID is gone. The address comes from the
# server's own reading of CONFIG.
probe_health() {
  "$(server_python)" - "$1" "$2" "$3" <<'PYTHON'
import os, ssl, sys, time, urllib.request
from jobserver.common.config import load_settings

settings = load_settings(sys.argv[1] or None)
host = settings.bind_address if settings.bind_address not in ("", "0.0.0.0", "::") else "127.0.0.1"
host = f"[{host}]" if ":" in host else host
url = f"{'https' if settings.tls.enabled else 'http'}://{host}:{settings.port}/healthz"
context = ssl._create_unverified_context() if settings.tls.enabled else None  # our own server
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as answer:
            if answer.status == 200:
                print(f"{url} answers")
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(int(sys.argv[3]), 0)
    except ProcessLookupError:
        print(f"{url} does not answer: the server exited")
        sys.exit(1)
    if time.monotonic() >= deadline:
        print(f"{url} does not answer")
        sys.exit(1)
    time.sleep(0.5)
PYTHON
}

# start_server [CONFIG]: in the background, returning once it listens; 1 when it cannot start.
start_server() {
  local start_config=${1:-$config}
  read_pid_file
  case $server_state in
    running)
      echo "job server already running (pid $pid)" >&2
      return 1
      ;;
    stale) forget_stale_pid_file ;;
  esac
  [ -x "$jobserver" ] || { echo "$jobserver not found: run 'make install' first" >&2; return 1; }
  local arguments=()
  if [ -n "$start_config" ]; then
    if [ ! -f "$start_config" ]; then
      echo "config file $start_config does not exist" >&2
      return 1
    fi
    start_config=$(cd "$(dirname "$start_config")" && pwd -P)/$(basename "$start_config")
    arguments=("$start_config")
  fi
  mkdir -p "$(dirname "$pid_file")" "$(dirname "$log_file")" "$run_dir"
  local log_offset
  log_offset=$(($(stat -c %s "$log_file" 2>/dev/null || echo 0) + 1))
  (cd "$run_dir" && exec nohup "$jobserver" "${arguments[@]}" >>"$log_file" 2>&1 </dev/null) &
  local new_pid=$!
  local new_start
  if new_start=$(start_time "$new_pid"); then
    echo "$new_pid $new_start $start_config" >"$pid_file"
  fi
  # Fail here, not later, when the server dies at start-up (bad config, port taken): wait until
  # it listens (aiohttp prints "Running on") or exits, up to start_timeout_s.
  local deadline=$((SECONDS + start_timeout_s))
  while kill -0 "$new_pid" 2>/dev/null; do
    if tail -c +"$log_offset" "$log_file" | grep -q "Running on"; then
      echo "job server started (pid $new_pid), log: $log_file"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "job server started (pid $new_pid) and is still starting up, log: $log_file"
      return 0
    fi
    sleep 0.2
  done
  rm -f "$pid_file"
  echo "job server failed to start; last lines of $log_file:" >&2
  tail -c +"$log_offset" "$log_file" | tail -n 20 >&2
  return 1
}

# stop_server [--keep-contexts]: SIGTERM (SIGUSR1 keeping the contexts' drivers), then wait.
# Returns 0 stopped (or not running, a stale pid file removed), 1 no pid file or killed after
# the timeout.
stop_server() {
  local stop_signal=TERM
  [ "${1:-}" != --keep-contexts ] || stop_signal=USR1
  read_pid_file
  case $server_state in
    stopped)
      echo "no pid file at $pid_file: is the job server running?" >&2
      return 1
      ;;
    stale)
      forget_stale_pid_file
      echo "job server not running"
      return 0
      ;;
  esac
  kill "-$stop_signal" "$pid"
  local deadline=$((SECONDS + stop_timeout_s))
  # Until the pid is gone or is another process's (reused once our server exited).
  while kill -0 "$pid" 2>/dev/null && { [ -z "$recorded_start" ] || [ "$(start_time "$pid")" = "$recorded_start" ]; }; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "job server (pid $pid) still running after ${stop_timeout_s}s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pid_file"
      return 1
    fi
    sleep 0.2
  done
  rm -f "$pid_file"
  echo "job server stopped"
}

# server_status: 0 running (pid, config, uptime, /healthz), 3 not running (LSB).
server_status() {
  read_pid_file
  case $server_state in
    stopped)
      echo "job server not running"
      return 3
      ;;
    stale)
      forget_stale_pid_file
      echo "job server not running"
      return 3
      ;;
  esac
  local ticks_per_s uptime_s
  ticks_per_s=$(getconf CLK_TCK)
  uptime_s=$(($(cut -d. -f1 /proc/uptime) - $(start_time "$pid") / ticks_per_s))
  echo "job server running (pid $pid), up $((uptime_s / 3600))h $((uptime_s % 3600 / 60))m $((uptime_s % 60))s"
  echo "config: ${recorded_config:-(defaults)}"
  echo "log: $log_file"
  echo "health: $(probe_health "$recorded_config" 0 "$pid" 2>&1 | tail -n 1)"
  return 0
}
