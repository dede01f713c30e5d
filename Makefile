# toolbridge — every target builds what it needs from nothing (uv, the virtual environment, Node tools).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTHON ?= python3
VENV_STAMP := .venv/.synced
NODE_STAMP := tests/node/node_modules/.installed
# the 2026-07-28 tasks extension's upstream in tests (FastMCP + fastmcp-tasks, its own environment)
TASKS_VENV := tests/.venvs/fastmcp-tasks
TASKS_STAMP := $(TASKS_VENV)/.ready
TASKS_SPEC := fastmcp-tasks==4.1.4 fastmcp-slim==4.1.4 mcp==2.3.0
# schemathesis, judging the REST API against its own OpenAPI document (tests/e2e/test_rest_fuzz.py)
FUZZ_VENV := tests/.venvs/schemathesis
FUZZ_STAMP := $(FUZZ_VENV)/.ready
FUZZ_SPEC := schemathesis==4.32.5
# the browser of the admin UI's tests (tests/e2e/test_admin_browser.py): the system's Chromium, never
# Playwright's download
CHROMIUM ?= /usr/bin/chromium
CONFIG ?= examples/quickstart.yaml
AGENT ?= assistant
BENCH_WORKSPACE_MIB ?= 1024
# the suite runs in parallel (pytest-xdist): one worker per CPU and one more, since many tests wait on
# servers they started rather than compute; TEST_WORKERS=0 runs it in this one process
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

.PHONY: help run test lint bench env node chromium clean

help: ## show the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

# bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on this machine), every process the tests
# start would otherwise compile the libraries it imports again (~0.8 s CPU each)
$(VENV_STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --extra semantic --extra otel --compile-bytecode
	@touch $@

$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	@touch $@

# compiled too, for the same reason: each start of ext_task_server.py took 2.1 s CPU, 1.0 s compiled, and at
# load 10-15 its uncompiled starts took 26-30 s, past the tests' readiness bound
$(TASKS_STAMP): | $(UV)
	$(UV) venv -q --allow-existing --python 3.11 $(TASKS_VENV)
	$(UV) pip install -q --compile-bytecode --python $(TASKS_VENV)/bin/python $(TASKS_SPEC)
	@touch $@

$(FUZZ_STAMP): | $(UV)
	$(UV) venv -q --allow-existing --python 3.11 $(FUZZ_VENV)
	$(UV) pip install -q --compile-bytecode --python $(FUZZ_VENV)/bin/python $(FUZZ_SPEC)
	@touch $@

env: $(VENV_STAMP) ## create or update the virtual environment
node: $(NODE_STAMP) $(TASKS_STAMP) $(FUZZ_STAMP) ## install the test tools (MCP conformance suite, Inspector, fastmcp-tasks …)

chromium: ## install Chromium for the browser tests with apt-get (when missing and run as root)
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "installing chromium with apt-get (for the admin UI's browser tests)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends chromium > /dev/null 2>&1 \
	  || { apt-get update -qq > /dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium > /dev/null 2>&1; } \
	  || echo "chromium could not be installed: the browser tests skip (fail under TOOLBRIDGE_REQUIRE_SERVICES=1)"; \
	fi

run: $(VENV_STAMP) ## serve examples/quickstart.yaml on 127.0.0.1:8080 and print a fresh agent key
	$(UV) run --frozen toolbridge serve --config $(CONFIG) --create-agent $(AGENT)

test: $(VENV_STAMP) $(NODE_STAMP) $(TASKS_STAMP) $(FUZZ_STAMP) chromium ## run the whole test suite
	@$(UV) run --frozen python -m compileall -q src > /dev/null
	$(UV) run --frozen pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(VENV_STAMP) ## ruff (lint + format check) and mypy --strict
	$(UV) run --frozen ruff check src tests bench examples
	$(UV) run --frozen ruff format --check src tests bench examples
	$(UV) run --frozen mypy

bench: $(VENV_STAMP) ## benchmarks (prints medians, p99 and ratios against baselines)
	$(UV) run --frozen python bench/call_overhead.py $(BENCH_ARGS)
	$(UV) run --frozen python bench/resilience.py
	$(UV) run --frozen python bench/chaos.py
	$(UV) run --frozen python bench/credentials.py
	$(UV) run --frozen python bench/existence_oracle.py
	$(UV) run --frozen python bench/openapi_ingest.py
	$(UV) run --frozen python bench/tool_search.py
	$(UV) run --frozen python bench/openapi_call.py
	$(MAKE) --no-print-directory node
	$(UV) run --frozen python bench/mcp_proxy.py
	$(UV) run --frozen python bench/workspace.py --size-mib $(BENCH_WORKSPACE_MIB)

clean: ## remove the environments and local state
	rm -rf .venv .tools tests/node/node_modules .toolbridge
