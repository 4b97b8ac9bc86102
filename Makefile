# The two commands a newcomer needs: `make run` and `make test`. Everything else is for us.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?=
PYTEST_ARGS ?=

.PHONY: install run test lint examples jvm-api bench package deploy clean

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

bench: install
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/latency.py --auth basic
	$(BIN)/python bench/connect.py
	$(BIN)/python bench/adhoc.py
	$(BIN)/python bench/floor.py
	$(BIN)/python bench/store_queries.py
	$(BIN)/python bench/results.py
	$(BIN)/python bench/throughput.py

package: install
	bin/server_package.sh

deploy: package
	bin/server_deploy.sh $(DEPLOY_HOST) $(DEPLOY_DIR)

clean:
	rm -rf $(VENV) examples/dist driver/jars jobserver-work .pytest_cache .bench
