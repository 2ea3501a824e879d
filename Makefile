# demandcast — the two commands that matter: `make demo` and `make test`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help setup demo test lint typecheck unit integration test-compose stack-up stack-down readme clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## Install system packages (when root) and the .venv; idempotent
	@scripts/setup.sh

demo: setup ## The main job: stack up, replay the real UCI log, forecasts, report
	$(BIN)/demandcast demo

test: setup lint typecheck ## ruff, mypy, then every test (integration against real Kafka + Redis)
	$(BIN)/pytest tests

lint: setup ## ruff lint and format check, the layer contract (import-linter), docker-compose.yml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo
	docker-compose -f docker-compose.yml config -q

typecheck: setup ## mypy over the packages and the tests
	$(BIN)/mypy

unit: setup ## Only the tests that need no services
	$(BIN)/pytest -q tests/unit

integration: setup ## Only the tests against real Kafka + Redis
	$(BIN)/pytest -q tests/integration

test-compose: setup ## Needs a Docker engine: compose stack up, integration tests against it, down -v
	docker compose up -d --build --wait
	DEMANDCAST_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 DEMANDCAST_REDIS_URL=redis://127.0.0.1:6379/0 \
		$(BIN)/pytest -q tests/integration; status=$$?; docker compose down -v; exit $$status

stack-up: setup ## Start the embedded Kafka + Redis
	$(BIN)/demandcast stack up

stack-down: ## Stop the embedded Kafka + Redis
	$(BIN)/demandcast stack down

readme: setup ## Regenerate the settings table in README.md
	$(BIN)/python scripts/readme_settings.py

clean: stack-down ## Stop the stack and remove its state (var/)
	rm -rf var
