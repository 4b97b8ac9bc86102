#!/usr/bin/env bash
# Deploy the packaged job server to a host over ssh: bin/server_deploy.sh USER@HOST [DIR]
# Copies the package from bin/server_package.sh, unpacks it into DIR (default ~/jobserver),
# installs it with `make install` there and restarts the server with DIR/jobserver.conf if present.
set -euo pipefail
host=${1:?usage: server_deploy.sh USER@HOST [DIR]}
dir=${2:-jobserver}
cd "$(dirname "$0")/.."
package=$(ls -t dist/spark-jobserver-python-*.tar.gz | head -n 1)
scp "$package" "$host:/tmp/"
ssh "$host" bash -s -- "$dir" "/tmp/$(basename "$package")" <<'REMOTE'
set -euo pipefail
dir=$1 package=$2
mkdir -p "$dir"
tar xzf "$package" -C "$dir" --strip-components=1
cd "$dir"
make install
[ -f jobserver.pid ] && bin/server_stop.sh || true
if [ -f jobserver.conf ]; then bin/server_start.sh jobserver.conf; else bin/server_start.sh; fi
REMOTE
