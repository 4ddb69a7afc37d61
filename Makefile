# Open-data pipeline. `make run` and `make test` create everything they need from nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BIN := $(shell .ci/find-python)
VENV := .venv
SAMVENV := .venv-sam
PY := $(VENV)/bin/python
# sam build needs python3.13 on PATH: the project venv, made from it, provides one.
# The template uses AWS::LanguageExtensions (Fn::ForEach): SAM CLI expands it locally only when asked.
SAM := PATH="$(CURDIR)/$(VENV)/bin:$(CURDIR)/$(SAMVENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 \
	SAM_CLI_ENABLE_LANGUAGE_EXTENSIONS=1 $(SAMVENV)/bin/sam
REGION ?= us-east-1
ARGS ?=
ENV ?= dev
# the stack to deploy, check or smoke-test (default: the samconfig environment's stack_name)
STACK ?=
PREFLIGHT_ARGS ?=
PYTEST_ARGS ?=
# make unit spreads the tests over this many processes (pytest-xdist); 0 runs them in this one
PYTEST_WORKERS ?= 2

.PHONY: help venv samvenv run test test-fast lint format unit checks cfn-lint sam-validate build preflight deploy smoke bench bench-scale glue-tables chaos report redrive clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON_BIN) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

$(SAMVENV)/.installed: requirements-sam.txt
	$(PYTHON_BIN) -m venv $(SAMVENV)
	$(SAMVENV)/bin/pip install --quiet --upgrade pip
	$(SAMVENV)/bin/pip install --quiet -r requirements-sam.txt
	touch $@

venv: $(VENV)/.installed ## the project venv (.venv)

samvenv: $(SAMVENV)/.installed ## the SAM CLI venv (.venv-sam), kept apart: SAM pins its own boto3 and pydantic

run: venv ## run the whole pipeline locally on moto, offline (ARGS='--live', '--replay-dir DIR', '--source bls_api', ...)
	$(PY) -m localrun $(ARGS)

test: ## every test and static check (what CI runs)
	$(MAKE) -j2 venv samvenv
	$(MAKE) lint unit checks build

# The feedback loop while coding: the unit tier with every socket refused (no moto or replay server, no local run),
# in under a minute on 2 cores. A test that needs a socket is marked `sockets` (tests/conftest.py) and runs in `make test`.
test-fast: venv ## the unit tier without sockets, in under a minute (make test runs everything)
	$(VENV)/bin/pytest tests/unit --no-sockets -q -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

lint: venv ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# --dist loadscope: a module's tests run in one worker, so a module-scoped fixture (a local run) is computed once;
# results shared across modules (reference lakes, the IAM run) are made once per session under a file lock.
unit: venv ## pytest: unit, integration and the e2e subset (not the full chaos matrix)
	$(VENV)/bin/pytest -m "not chaos" -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

checks: cfn-lint sam-validate ## template checks

cfn-lint: samvenv
	$(SAMVENV)/bin/cfn-lint template.yaml stacks/*.yaml

sam-validate: samvenv
	$(SAM) validate --lint --region $(REGION)

# Lambda cannot write __pycache__ (/var/task and /opt are read-only), so without bytecode in the package every cold
# start compiles our modules again. The artifacts get python3.13 bytecode that is valid without checking the source
# (unchecked-hash: no mtime to compare, zip packaging keeps none that is exact).
build: venv samvenv ## sam build (python3.13), then bytecode compiled into the artifacts
	$(SAM) build --region $(REGION)
	$(PY) -m compileall -q -f -j 0 --invalidation-mode unchecked-hash .aws-sam/build

preflight: venv ## check the target account before a deploy: STACK=name REGION=region (ENV=dev|prod)
	$(PY) -m ops.preflight --config-env $(ENV) --region $(REGION) $(if $(STACK),--stack $(STACK)) $(PREFLIGHT_ARGS)

# Non-interactive (CI has no terminal): preflight has already said what will happen, and stops on what would fail.
deploy: preflight build ## preflight, then sam deploy with the samconfig environment ENV (default dev): STACK=, REGION=
	$(SAM) deploy --config-env $(ENV) --region $(REGION) $(if $(STACK),--stack-name $(STACK)) \
		--no-confirm-changeset --no-fail-on-empty-changeset

smoke: venv ## after a deploy: a small real run, checked end to end (STACK=name REGION=region)
	@test -n "$(STACK)" || { echo "usage: make smoke STACK=<deployed stack> [REGION=$(REGION)]"; exit 2; }
	$(PY) -m ops.smoke --stack $(STACK) --region $(REGION) $(ARGS)

bench: venv build ## the performance bars as ratios against same-run baselines (bench/results.json)
	$(PY) -m bench.run $(ARGS)

bench-scale: venv ## the pipeline at 1x, 10x and 100x of today's data, against Lambda's limits, costed (bench/README.md)
	$(PY) -m bench.scale $(ARGS)

glue-tables: venv ## rewrite stacks/catalog.yaml's Glue columns from the code's schemas (a new column is written once)
	$(PY) -m checks.glue_tables --write

chaos: venv ## the full fault-injection matrix
	$(VENV)/bin/pytest -m chaos $(PYTEST_ARGS)

report: venv ## charts (PNG) and an HTML report of the marts under the lake's marts/reports/ (ARGS='--lake-dir DIR')
	$(PY) -m localrun.reports $(ARGS)

redrive: venv ## move a DLQ back to its queue and process it: QUEUE=ExtractDLQ locally; add STACK=name for AWS
	@test -n "$(QUEUE)" || { echo "usage: make redrive QUEUE=ExtractDLQ|TransformDLQ|ModelDLQ|NotifyDLQ|SchedulerDLQ [STACK=opendata-dev]"; exit 2; }
	$(PY) -m localrun.redrive $(QUEUE) $(if $(STACK),--stack $(STACK) --region $(REGION)) $(ARGS)

clean: ## remove build output and the local lake (keeps the venvs)
	rm -rf .aws-sam .lake .pytest_cache .ruff_cache
