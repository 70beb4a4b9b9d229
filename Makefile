# Bastion — every target installs what it needs first. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
SCALE ?= 0.01
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help install browser demo serve test lint typecheck bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

install: .venv/.installed ## Install Python and its packages into .venv (uv, locked)

#: Debian packages the browser tests need: Chromium, and a small CJK font so that pages and
#: charts show Chinese instead of boxes.
BROWSER_PACKAGES := chromium fonts-wqy-microhei

browser: ## Debian's Chromium for the browser tests (never Playwright's own download)
	@if [ -x /usr/bin/chromium ] && [ -d /usr/share/fonts/truetype/wqy ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y $(BROWSER_PACKAGES); \
	elif command -v sudo >/dev/null 2>&1; then sudo apt-get update && sudo apt-get install -y $(BROWSER_PACKAGES); \
	else echo "!!! /usr/bin/chromium is missing and this user cannot install it (not root, no sudo):"; \
	     echo "!!! run 'apt-get install -y $(BROWSER_PACKAGES)' as root, or the browser tests will be skipped"; fi

demo: install ## Build a demo province in ./var/bastion.db and serve it on http://127.0.0.1:8000
	$(RUN) bastion demo --scale $(SCALE) --host $(HOST) --port $(PORT)

serve: install ## Serve the existing database
	$(RUN) bastion db upgrade
	$(RUN) bastion serve --host $(HOST) --port $(PORT)

lint: install ## ruff (lint and format check) and mypy on src/
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench
	$(RUN) mypy

test: lint browser ## Lint, type-check, then the whole suite on SQLite and PostgreSQL
	$(RUN) pytest $(PYTEST_ARGS)

bench: install ## Benchmarks: one JSON line per result (BENCH_SCALE shrinks them)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } || echo "wrk missing: the live API benchmark will be skipped"
	$(RUN) python -m bench.run $(BENCH_ARGS)

clean: ## Remove the local database and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
