#!/usr/bin/env bash
# Deploy the package of bin/server_package.sh to a fleet over ssh: bin/server_deploy.sh [ENV]
# ENV names conf/ENV.sh or is the path of such a file (see conf/deploy.sh.template; default
# $DEPLOY_ENV); variables set in the environment win over it (DEPLOY_HOSTS="a b c").
# For each host in turn: copy the package (and CONFIG, SETTINGS) over scp, run its install.sh
# into INSTALL_DIR over ssh (it stops the running server, keeping its contexts' drivers with
# KEEP_CONTEXTS=yes, starts the new release and rolls back when it does not answer /healthz).
# The deploy stops at the first host that failed, so the fleet is never all broken, and prints a
# line per host. Exits 1 when a host failed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
settings=(DEPLOY_HOSTS APP_USER INSTALL_DIR SSH_PORT SSH_OPTS CONFIG SETTINGS KEEP_CONTEXTS
  KEEP_RELEASES PYTHON HEALTH_TIMEOUT_S PACKAGE)
declare -A given=()
for variable in "${settings[@]}"; do given[$variable]=${!variable:-}; done

env_file=${1:-${DEPLOY_ENV:-}}
if [ -n "$env_file" ]; then
  [ -f "$env_file" ] || env_file=$repo/conf/$env_file.sh
  [ -f "$env_file" ] || { echo "no deploy environment ${1:-$DEPLOY_ENV}: $env_file does not exist" >&2; exit 2; }
  # shellcheck source=/dev/null
  . "$env_file"
fi
for variable in "${settings[@]}"; do
  [ -z "${given[$variable]}" ] || printf -v "$variable" '%s' "${given[$variable]}"
done
if [ -z "${DEPLOY_HOSTS:-}" ]; then
  echo "usage: $0 [ENV]: no DEPLOY_HOSTS (set them in conf/ENV.sh or the environment)" >&2
  exit 2
fi
install_dir=${INSTALL_DIR:-jobserver}
package=${PACKAGE:-}
if [ -z "$package" ]; then
  package=$(find "$repo/dist" -maxdepth 1 -name 'spark-jobserver-python-*.tar' -printf '%T@ %p\n' 2>/dev/null |
    sort -rn | head -n 1 | cut -d' ' -f2-)
fi
[ -f "$package" ] || { echo "no package to deploy: run 'make package' first" >&2; exit 2; }
for file in ${CONFIG:+"$CONFIG"} ${SETTINGS:+"$SETTINGS"}; do
  [ -f "$file" ] || { echo "$file does not exist" >&2; exit 2; }
done
read -r -a ssh_options <<<"${SSH_OPTS:-}"
ssh_options=(-o BatchMode=yes "${ssh_options[@]}")
name=$(basename "$package" .tar)
incoming=$install_dir/.incoming

install_arguments=()
case ${KEEP_CONTEXTS:-yes} in
  yes | true) install_arguments+=(--keep-contexts) ;;
  no | false) ;;
  *) echo "KEEP_CONTEXTS is yes or no, not $KEEP_CONTEXTS" >&2; exit 2 ;;
esac
[ -z "${CONFIG:-}" ] || install_arguments+=(--config "$incoming/$(basename "$CONFIG")")
[ -z "${SETTINGS:-}" ] || install_arguments+=(--settings "$incoming/$(basename "$SETTINGS")")
install_arguments+=(--keep-releases "${KEEP_RELEASES:-3}" "$install_dir")
# Run from the login directory, where a relative INSTALL_DIR is.
remote_command=$(printf '%q ' tar xf "$incoming/$name.tar" -C "$incoming")"&& "
remote_command+=$(printf '%q ' env "PYTHON=${PYTHON:-python3}" "HEALTH_TIMEOUT_S=${HEALTH_TIMEOUT_S:-60}" \
  "$incoming/$name/install.sh" "${install_arguments[@]}")
remote_command+="; status=\$?; rm -rf $(printf '%q' "$incoming"); exit \$status"

summary=()
failed=''
output=$(mktemp)
trap 'rm -f "$output"' EXIT
for host in $DEPLOY_HOSTS; do
  if [ -n "$failed" ]; then
    summary+=("$host: skipped (stopped after $failed failed)")
    continue
  fi
  target=${APP_USER:+$APP_USER@}$host
  echo "== $host: deploying $name into $install_dir"
  if ssh -p "${SSH_PORT:-22}" "${ssh_options[@]}" "$target" "mkdir -p $(printf '%q' "$incoming")" &&
    scp -q -P "${SSH_PORT:-22}" "${ssh_options[@]}" "$package" ${CONFIG:+"$CONFIG"} ${SETTINGS:+"$SETTINGS"} \
      "$target:$incoming/" &&
    ssh -p "${SSH_PORT:-22}" "${ssh_options[@]}" "$target" "$remote_command" 2>&1 | tee "$output"; then
    summary+=("$host: $(grep -o 'installed .*: serving' "$output" | tail -n 1 || echo installed)")
  else
    failed=$host
    if grep -q "rolled back to" "$output"; then
      summary+=("$host: FAILED, $(grep -o 'rolled back to .*' "$output" | tail -n 1)")
    else
      summary+=("$host: FAILED (see above)")
    fi
  fi
  : >"$output"
done
echo "== deploy summary"
printf '  %s\n' "${summary[@]}"
[ -z "$failed" ]
