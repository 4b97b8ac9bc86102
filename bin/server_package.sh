#!/usr/bin/env bash
# Package the job server for deployment: dist/spark-jobserver-python-<version>.tar.gz holding the
# tracked sources, conf/ and sql/, and the example job packages. Install it on the target with
# `make install` (it creates the virtualenv there).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
name=spark-jobserver-python-$version
mkdir -p dist
git ls-files >"dist/$name.files"
ls examples/dist/* >>"dist/$name.files" 2>/dev/null || true
tar czf "dist/$name.tar.gz" --transform "s,^,$name/," -T "dist/$name.files"
rm "dist/$name.files"
echo "dist/$name.tar.gz"
