# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export AMQP_URL

.PHONY: venv dev demo test test-fast lint schemas bench rabbitmq clean

# The demo needs the runtime only; the tests add the dev tools on top of the same environment.
$(VENV)/.runtime: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.runtime
dev: $(VENV)/.dev

rabbitmq:
	bash scripts/ensure_rabbitmq.sh

demo: venv
	$(BIN)/mlpower demo

test: dev rabbitmq
	$(BIN)/python -m pytest -q

test-fast: dev
	$(BIN)/python -m pytest -q -m "not slow"

lint: dev
	$(BIN)/ruff check shared services tests bench deploy
	$(BIN)/mypy shared

schemas: venv
	$(BIN)/mlpower schemas write

bench: dev rabbitmq
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
