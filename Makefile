# The two commands a newcomer needs: `make run` and `make test`. Everything else is for us.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?=
PYTEST_ARGS ?=

.PHONY: install run test lint examples jvm-api bench package deploy image clean

install: $(STAMP) examples jvm-api

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

examples: $(STAMP)
	$(BIN)/python examples/build.py examples/dist

# The adapter for spark-jobserver's JVM job API (jvm/ -> driver/jars/), against pyspark's jars and
# Debian's libtypesafe-config-java; without that jar it says so and builds nothing.
jvm-api: $(STAMP)
	$(BIN)/python jvm/build.py

run: install
	$(BIN)/jobserver $(CONFIG)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check jobserver driver sparkjobserver client tests bench examples jvm
	$(BIN)/lint-imports
	$(BIN)/mypy
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck bin/*.sh; \
	else echo "shellcheck not found: bin/*.sh not checked (apt-get install shellcheck)"; fi

bench: install
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/latency.py --auth basic
	$(BIN)/python bench/connect.py
	$(BIN)/python bench/adhoc.py
	$(BIN)/python bench/floor.py
	$(BIN)/python bench/store_queries.py
	$(BIN)/python bench/results.py
	$(BIN)/python bench/throughput.py

# dist/spark-jobserver-python-<version>.tar: the server's wheel, its runtime dependencies'
# wheels, bin/ and conf/, and install.sh (see docs/operations.md).
package: install
	bin/server_package.sh

# Install the package on hosts over ssh, one after the other, keeping running contexts:
#   make deploy DEPLOY_ENV=prod            (conf/prod.sh, from conf/deploy.sh.template)
#   make deploy DEPLOY_HOSTS="a b c"       (and/or; variables given here win over the file)
deploy: package
	bin/server_deploy.sh $(DEPLOY_ENV)

# The server's image, from the package (Dockerfile).
image: package
	docker build -t spark-jobserver-python:$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) .

clean:
	rm -rf $(VENV) examples/dist driver/jars jobserver-work .pytest_cache .bench
