# lambdapipe — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := uv run
PYTEST_ARGS ?=

.PHONY: help setup demo test test-heavy test-unit test-integration lint format bench up down status clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

setup: ## Install everything missing (Debian packages, Python env, JVM jars); idempotent
	@bash scripts/setup.sh

DEMO_ARGS ?=

demo: setup ## Start the stack and run the real-time pipeline, watched live (DEMO_ARGS="--minutes 2 --rate 5000")
	@$(UV) lambdapipe demo $(DEMO_ARGS)

test: setup ## Run the tests: unit, integration (starts a private stack), e2e; not the heavy ones
	@$(UV) pytest -m "not heavy" $(PYTEST_ARGS)

test-heavy: setup ## Run the heavy speed-layer scenarios (200K events, kill -9, store outage)
	@$(UV) pytest -m heavy $(PYTEST_ARGS)

test-unit: setup ## Run the fast unit tests only
	@$(UV) pytest -m "not integration and not e2e" $(PYTEST_ARGS)

test-integration: setup ## Run the tests that start the local stack
	@$(UV) pytest -m "integration or e2e" $(PYTEST_ARGS)

lint: setup ## ruff (lint incl. the security rules, format check), mypy, a secrets scan of the tracked files
	@$(UV) ruff check src tests bench
	@$(UV) ruff format --check src tests bench
	@$(UV) mypy
	@git ls-files -z | grep -zv '^uv.lock$$' | xargs -0 $(UV) detect-secrets-hook

format: setup ## Format the code with ruff
	@$(UV) ruff check --fix src tests bench
	@$(UV) ruff format src tests bench

bench: setup ## Run the benchmarks (JSON results in bench/results/)
	@for b in bench/bench_*.py; do echo "== $$b"; $(UV) python $$b || exit 1; done

up: setup ## Start the local stack
	@$(UV) lambdapipe up

down: ## Stop the local stack
	@$(UV) lambdapipe down

status: ## Show the local stack
	@$(UV) lambdapipe status
