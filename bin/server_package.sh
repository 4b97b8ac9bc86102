#!/usr/bin/env bash
# Package the job server for installing anywhere: dist/spark-jobserver-python-<version>.tar
# (uncompressed: wheels are zip files already) holding
#   install.sh                            installs a release and (re)starts the server
#   spark_jobserver_python-<version>-*.whl  the server (conf/ and sql/ are package data)
#   wheelhouse/                           its runtime dependencies, as wheels (no dev extras)
#   bin/                                  server.sh and the scripts it uses
#   conf/                                 defaults.conf and the templates
#   VERSION
# The wheels are built for this machine's Python (PYTHON, default .venv/bin/python): install on
# hosts with the same Python minor version and platform. DIST_DIR: where the tar goes (dist).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
name=spark-jobserver-python-$version
dist_dir=${DIST_DIR:-dist}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
package=$stage/$name
mkdir -p "$package/bin" "$package/conf" "$package/wheelhouse" "$dist_dir"

"$python" -m pip wheel --quiet --no-deps --wheel-dir "$package" .
server_wheel=$(echo "$package"/spark_jobserver_python-*.whl)
"$python" -m pip wheel --quiet --wheel-dir "$package/wheelhouse" "$server_wheel"
rm "$package"/wheelhouse/spark_jobserver_python-*.whl
cp bin/server.sh bin/server_common.sh bin/server_start.sh bin/server_stop.sh "$package/bin/"
cp conf/defaults.conf conf/*.template "$package/conf/"
cp bin/server_install.sh "$package/install.sh"
echo "$version" >"$package/VERSION"
tar cf "$dist_dir/$name.tar" -C "$stage" "$name"
echo "$dist_dir/$name.tar"
