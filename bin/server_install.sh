#!/usr/bin/env bash
# install.sh of a package made by bin/server_package.sh (this file, renamed): install the job
# server into INSTALL_DIR and (re)start it.
#   ./install.sh [--keep-contexts] [--config FILE] [--settings FILE] [--keep-releases N]
#                [--no-start] INSTALL_DIR
# Each install is a release, INSTALL_DIR/releases/<version>-<UTC time>/ (venv/, bin/, conf/, and
# jobserver.conf and settings.sh: the given ones, else the previous release's), installed from
# the package's wheelhouse alone (no index). INSTALL_DIR/current points at the release that
# runs; the pid file, the log and a relative work-dir are INSTALL_DIR's, shared by releases.
# A running server is stopped (with --keep-contexts: its drivers go on and rejoin the new
# server), the new release started, and its /healthz awaited (HEALTH_TIMEOUT_S, 60 s). When it
# does not answer, current goes back to the previous release, which is started again with the
# config it ran with, and install.sh exits 1. The newest N releases are kept (3).
# PYTHON: the interpreter to build the venv with (python3); it must be the minor version and
# platform the package was built for.
set -euo pipefail
package_dir=$(cd "$(dirname "$0")" && pwd -P)
usage() {
  echo "usage: $0 [--keep-contexts] [--config FILE] [--settings FILE] [--keep-releases N] [--no-start] INSTALL_DIR" >&2
  exit 2
}
keep_contexts='' config_file='' settings_file='' keep_releases=${KEEP_RELEASES:-3} start=true
while [ $# -gt 1 ]; do
  case $1 in
    --keep-contexts) keep_contexts=--keep-contexts; shift ;;
    --config) config_file=$(realpath "$2"); shift 2 ;;
    --settings) settings_file=$(realpath "$2"); shift 2 ;;
    --keep-releases) keep_releases=$2; shift 2 ;;
    --no-start) start=false; shift ;;
    *) usage ;;
  esac
done
if [ $# -ne 1 ] || [[ "$1" == -* ]] || ! [[ "$keep_releases" =~ ^[1-9][0-9]*$ ]]; then usage; fi
mkdir -p "$1/releases"
install_dir=$(cd "$1" && pwd -P)
version=$(cat "$package_dir/VERSION")
python=${PYTHON:-python3}
health_timeout_s=${HEALTH_TIMEOUT_S:-60}

# The package's wheels and nothing else: no index, none of this machine's pip settings, and no
# caller's PYTHONPATH (pip would take a distribution found there as installed already).
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
while read -r variable; do unset "$variable"; done < <(compgen -e | grep '^PIP_' || true)
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1

name=$version-$(date -u +%Y%m%dT%H%M%SZ)
release=$install_dir/releases/$name
suffix=1
while [ -e "$release" ]; do
  suffix=$((suffix + 1))
  release=$install_dir/releases/$name-$suffix
done
name=$(basename "$release")
previous=''
[ ! -L "$install_dir/current" ] || previous=$(readlink -f "$install_dir/current")

# One install at a time per INSTALL_DIR (two deploys at once would race on current).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$install_dir/.install.lock"
  flock -n 9 || { echo "another install into $install_dir is running" >&2; exit 1; }
fi
# A server there that no release of install.sh started (an earlier layout) is not stopped here:
# there would be nothing to roll back to.
if [ -z "$previous" ] && [ -f "$install_dir/jobserver.pid" ]; then
  read -r old_pid _ <"$install_dir/jobserver.pid" || true
  if [[ "${old_pid:-}" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$old_pid/cmdline" 2>/dev/null | grep -q jobserver; then
    echo "a job server not installed by install.sh runs from $install_dir (pid $old_pid): stop it" \
      "first (bin/server_stop.sh --keep-contexts keeps its contexts), then install again" >&2
    exit 1
  fi
fi

# What the venv is made of besides the server: the interpreter and the dependencies' wheels.
dependencies=$(realpath "$(command -v "$python" || echo "$python")")$'\n'$(
  cd "$package_dir/wheelhouse" && find . -name '*.whl' -printf '%f %s\n' | sort
)

# --no-compile: pyspark alone is 450 MB; Python writes the byte code at first import instead.
install_venv() {
  "$python" -m venv "$release/venv" &&
    "$release/venv/bin/python" -m pip install --quiet --no-compile --no-index \
      --find-links "$package_dir/wheelhouse" "$package_dir"/spark_jobserver_python-*.whl
}

# An upgrade whose dependencies are the previous release's (the same interpreter and wheels, as
# when only the server changed) hard-links the previous venv's files instead of unpacking 450 MB
# again, points its scripts at the new venv and installs the new server wheel over it. Nothing of
# the previous release changes: pip and Python replace files (unlink, rename), never write into
# them, and a link removed leaves the other in place.
link_previous_venv() {
  [ -n "$previous" ] && [ -f "$previous/DEPENDENCIES" ] && [ "$(cat "$previous/DEPENDENCIES")" = "$dependencies" ] ||
    return 1
  cp -al "$previous/venv" "$release/venv" &&
    { grep -lF "$previous/venv" -r "$release/venv/bin" "$release/venv/pyvenv.cfg" || true; } |
    xargs -r sed -i "s|$previous/venv|$release/venv|g" &&
    "$release/venv/bin/python" -m pip install --quiet --no-compile --no-index --no-deps \
      --force-reinstall "$package_dir"/spark_jobserver_python-*.whl
}

echo "installing $name into $install_dir"
mkdir "$release"
date -u +%Y%m%dT%H%M%S.%NZ >"$release/INSTALLED_AT"
if link_previous_venv; then
  echo "dependencies unchanged: linked $(basename "$previous")'s"
elif rm -rf "$release/venv" && ! install_venv; then
  rm -rf "$release"
  echo "installing $name failed; nothing changed" >&2
  exit 1
fi
echo "$dependencies" >"$release/DEPENDENCIES"
cp -R "$package_dir/bin" "$package_dir/conf" "$release/"
# The operator's files in conf/ (env files for -e) go along; the package's own win.
[ -z "$previous" ] || [ ! -d "$previous/conf" ] || cp -Rn "$previous/conf/." "$release/conf/" || true
for carried in jobserver.conf settings.sh; do
  if [ -n "$previous" ] && [ -f "$previous/$carried" ]; then cp -p "$previous/$carried" "$release/"; fi
done
[ -z "$config_file" ] || cp "$config_file" "$release/jobserver.conf"
[ -z "$settings_file" ] || cp "$settings_file" "$release/settings.sh"

# RELEASE's bin/server.sh; the install lock (fd 9) stays with install.sh, not with the server.
server() {
  local release_dir=$1
  shift
  "$release_dir/bin/server.sh" "$@" 9>&-
}

switch_current() {
  ln -sfn "$1" "$install_dir/current.new"
  mv -T "$install_dir/current.new" "$install_dir/current"
}

# What runs now, and with which config: the rollback starts the previous release with it again.
running_config=''
was_running=false
if [ -n "$previous" ] && status=$(server "$previous" status 2>/dev/null); then
  was_running=true
  running_config=$(sed -n 's/^config: //p' <<<"$status")
  [ "$running_config" != "(defaults)" ] || running_config=''
fi
# The new release takes a config of its own (jobserver.conf, carried or given) over the path the
# old server was started with, unless that path is outside the releases (the operator's file).
new_config=''
if [ ! -f "$release/jobserver.conf" ] && [[ "$running_config" != "$install_dir/releases/"* ]]; then
  new_config=$running_config
fi

prune_releases() {
  local kept=0 folder
  while read -r _ folder; do
    kept=$((kept + 1))
    [ "$kept" -le "$keep_releases" ] || [ "$folder" = "$release" ] || rm -rf "$folder"
  done < <(for folder in "$install_dir"/releases/*/; do
    folder=${folder%/}
    echo "$(cat "$folder/INSTALLED_AT" 2>/dev/null || echo 0) $folder"
  done | sort -r)
}

if [ "$start" = false ]; then
  switch_current "$release"
  prune_releases
  echo "installed $name (not started)"
  exit 0
fi

if [ "$was_running" = true ]; then
  echo "stopping the running server${keep_contexts:+ (keeping its contexts)}"
  server "$previous" stop ${keep_contexts:+"$keep_contexts"} || true # killed: gone all the same
fi
switch_current "$release"

rollback() {
  echo "upgrade to $name failed: $1" >&2
  # A server that started but does not answer may hold kept drivers: leave them for the rollback.
  server "$release" stop ${keep_contexts:+"$keep_contexts"} >/dev/null 2>&1 || true
  if [ -z "$previous" ]; then
    rm -f "$install_dir/current"
    rm -rf "$release"
    echo "no previous release to roll back to" >&2
    exit 1
  fi
  switch_current "$previous"
  rm -rf "$release"
  if server "$previous" start ${running_config:+"$running_config"} >&2 &&
    server "$previous" health "$health_timeout_s" >&2; then
    echo "rolled back to $(basename "$previous"), which serves again" >&2
  else
    echo "rolled back to $(basename "$previous"), which does not answer either: see $previous/bin/server.sh log" >&2
  fi
  exit 1
}

server "$release" start ${new_config:+"$new_config"} || rollback "the new server did not start"
server "$release" health "$health_timeout_s" ||
  rollback "the new server did not answer /healthz within ${health_timeout_s}s"
prune_releases
echo "installed $name: serving"
