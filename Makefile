# Two entry points (see README): `make run` starts the local stack and pushes purchases through it,
# `make test` installs everything and runs lint, types and every test suite against a real Kafka broker.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# checkov pins many libraries of its own, so it gets a virtualenv of its own.
CHECKOV := .venv-checkov/bin/checkov

.PHONY: run test install lock tools lint unit integration e2e bench clean

run: install
	$(BIN)/python -m devstack up --demo

test: install $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m devstack.template_config --output .devstack/template.expanded.json
	$(CHECKOV) -f .devstack/template.expanded.json --config-file .checkov.yaml
	$(BIN)/python -m devstack.broker fetch
	$(BIN)/python -m pytest

install: tools $(VENV)/.installed .cache/dynalite/.installed

# Java 17 and Maven fetch and run Apache Kafka, Node.js (>= 20) and npm the local DynamoDB (dynalite), Debian's
# chromium runs the delivery viewer's browser test (Playwright drives it; no browser download). Installed from
# Debian when missing (needs root or sudo), with one apt-get update for all of them.
tools:
	@MISSING=""; \
	  command -v java >/dev/null && command -v mvn >/dev/null || MISSING="openjdk-17-jre-headless maven"; \
	  command -v node >/dev/null && command -v npm >/dev/null || MISSING="$$MISSING nodejs npm"; \
	  [ -x /usr/bin/chromium ] || MISSING="$$MISSING chromium"; \
	  [ -z "$$MISSING" ] || { \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends $$MISSING; }
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'

# Every third-party package comes from requirements.lock, hash-checked: pip itself first (the venv's own pip may
# be too old for the lock), then the lock; the project is added editable without dependencies (and built with
# the locked setuptools).
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python layers/deps/install_locked.py --lock requirements.lock pip -- --quiet
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The local stack's DynamoDB (devstack/dynamodb_local.py): dynalite and its dependencies, pinned with hashes.
.cache/dynalite/.installed: devstack/dynalite/package-lock.json $(VENV)/.installed
	$(BIN)/python -m devstack.dynamodb_local install

# One lock for the dev environment, the deps layer (layers/deps/install_locked.py installs its share of it) and
# the runtime tests' runtime (awslambdaric, boto3): universal (every Python >= 3.11, every platform), with hashes.
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes \
		--quiet -o requirements.lock

$(CHECKOV):
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --upgrade pip
	.venv-checkov/bin/pip install --quiet 'checkov>=3.3,<4'

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-checkov .devstack .aws-sam .cache/runtime .pytest_cache .mypy_cache .ruff_cache
