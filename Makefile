# circuitwatch: `make help` lists the targets.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: help demo test check lint types unit generated bench bench-worker clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

demo: ## Set up (first run only) and run the demo: a simulated day, /metrics, outcomes, KPI report
	@scripts/bootstrap.sh python
	$(VENV)/circuitwatch demo

test: ## Set up everything (Python, Debian packages, Kafka) and run lint, types and all tests
	@scripts/bootstrap.sh system
	@scripts/bootstrap.sh dev
	scripts/with-services.sh $(MAKE) check

check: lint types generated unit ## Lint, types, generated-file diff and tests (services already up)

lint: ## ruff lint and format check
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

types: ## mypy --strict
	$(VENV)/mypy

generated: ## Fail if committed generated files (rules, dashboards) differ from what the code builds
	@scripts/check-generated.sh

unit: ## pytest (integration tests skip without services, except in CI)
	$(VENV)/pytest -q

bench: ## Replay throughput and memory (figures for the closing note)
	$(VENV)/python bench/replay.py

bench-worker: ## Worker throughput and latency against bare Faust, on a local Kafka it starts
	scripts/with-services.sh $(VENV)/python bench/worker.py

clean: ## Remove the venv, caches and demo output
	rm -rf .venv .cache circuitwatch-demo .mypy_cache .ruff_cache .pytest_cache
