# Two entry points (see README): `make run` starts the local stack and pushes purchases through it,
# `make test` installs everything and runs lint, types and every test suite against a real Kafka broker.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# checkov pins many libraries of its own, so it gets a virtualenv of its own.
CHECKOV := .venv-checkov/bin/checkov

.PHONY: run test install lock tools test-tools lambda-image lint unit integration e2e bench clean

run: install
	$(BIN)/python -m devstack up --demo

test: test-tools install $(CHECKOV) lambda-image
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m devstack.template_config --output .devstack/template.expanded.json
	$(CHECKOV) -f .devstack/template.expanded.json --config-file .checkov.yaml
	$(BIN)/python -m devstack.broker fetch
	$(BIN)/python -m pytest

install: tools $(VENV)/.installed .cache/dynalite/.installed

# `make run` needs, besides python3 (3.11+) and make: Python's venv (Debian ships it apart, in python3-venv), Java
# (17+: default-jre-headless is 17 on Debian 12, 21 on 13) and Maven to fetch and run Apache Kafka, Node.js (>= 20)
# and npm for the local DynamoDB (dynalite). `make test` also needs Debian's chromium (the delivery viewer's browser
# test; Playwright drives it, no browser download), Docker (tests/samlocal: `sam local invoke`) and debootstrap
# (tests/fresh: `make run` on a fresh Debian root file system). Whatever is missing is installed from Debian (needs
# root or sudo) with one apt-get update: `tools` for `make run`, `test-tools` (first) for all `make test` needs.
RUN_TOOLS = $(PYTHON) -c 'import ensurepip' 2>/dev/null || MISSING="$$MISSING python3-venv"; \
	command -v java >/dev/null && command -v mvn >/dev/null || MISSING="$$MISSING default-jre-headless maven"; \
	command -v node >/dev/null && command -v npm >/dev/null || MISSING="$$MISSING nodejs npm";
TEST_TOOLS = [ -x /usr/bin/chromium ] || MISSING="$$MISSING chromium"; \
	{ command -v dockerd || [ -x /usr/sbin/dockerd ]; } >/dev/null && command -v docker >/dev/null || MISSING="$$MISSING docker.io"; \
	command -v debootstrap >/dev/null || MISSING="$$MISSING debootstrap";
APT_INSTALL_MISSING = [ -z "$$MISSING" ] || { \
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends $$MISSING; }

tools:
	@MISSING=""; $(RUN_TOOLS) $(APT_INSTALL_MISSING)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'

test-tools:
	@MISSING=""; $(RUN_TOOLS) $(TEST_TOOLS) $(APT_INSTALL_MISSING)

# `sam local invoke` without a registry (tests/samlocal, docs/deploy.md): Lambda's python3.13 base image built from
# Debian packages into the project's own Docker engine (a private dockerd with its own bridge), cached in .cache/
# (first build about 1.5 min: debootstrap, then the image; later runs reuse both). Needs root.
lambda-image: test-tools install
	$(BIN)/python -m devstack.lambda_image

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
