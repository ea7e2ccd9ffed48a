# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export AMQP_URL

.PHONY: venv demo test test-fast lint schemas bench rabbitmq clean

$(BIN)/mlpower: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/mlpower

venv: $(BIN)/mlpower

rabbitmq:
	bash scripts/ensure_rabbitmq.sh

demo: venv
	$(BIN)/mlpower demo

test: venv rabbitmq
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

lint: venv
	$(BIN)/ruff check shared services tests bench
	$(BIN)/mypy shared

schemas: venv
	$(BIN)/mlpower schemas write

bench: venv rabbitmq
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
