# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export AMQP_URL

# The image: registry and tag come from scripts/image_ref.sh (MLPOWER_REGISTRY, the git commit).
MLPOWER_IMAGE ?= $(shell scripts/image_ref.sh)
MLPOWER_SLIM_IMAGE ?= $(shell scripts/image_ref.sh mlpower-slim)
# Pin the base by digest where the registry is reachable: make image PYTHON_BASE=python:3.11-slim@sha256:...
PYTHON_BASE ?= python:3.11-slim

.PHONY: venv dev demo test test-fast lint schemas bench rabbitmq clean image image-push standins lock

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

# The suite runs in TEST_WORKERS processes (pytest-xdist): most of its time is waiting on real
# processes, brokers and LoadGen runs, not CPU, so 3 workers fit 2 cores (bench/README.md has the
# timings); groups keep each package's shared measurement fixtures on one worker (tests/conftest.py).
TEST_WORKERS ?= 3
test: dev rabbitmq
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=25

test-fast: dev
	$(BIN)/python -m pytest -q -m "not slow"

lint: dev
	$(BIN)/ruff check shared services tests bench deploy
	$(BIN)/mypy shared services

schemas: venv
	$(BIN)/mlpower schemas write

bench: dev rabbitmq
	$(BIN)/python -m bench

# Needs a Docker engine (scripts/docker_engine.sh starts one); where Docker Hub is out of reach,
# `make standins` first builds the official base images' stand-ins from Debian packages.
# Two images: every service, and the simulator and SUT agent without the analysis stack.
image:
	docker build --network host --build-arg PYTHON_BASE=$(PYTHON_BASE) \
	  --build-arg MLPOWER_REVISION=$$(git rev-parse HEAD) -f deploy/Dockerfile -t $(MLPOWER_IMAGE) .
	docker build --network host --build-arg PYTHON_BASE=$(PYTHON_BASE) --target slim \
	  --build-arg MLPOWER_REVISION=$$(git rev-parse HEAD) -f deploy/Dockerfile -t $(MLPOWER_SLIM_IMAGE) .
	@echo "built $(MLPOWER_IMAGE) and $(MLPOWER_SLIM_IMAGE)"

image-push: image
	@case "$(MLPOWER_IMAGE)" in *-dirty-*) echo "refusing to push $(MLPOWER_IMAGE): commit first" >&2; exit 1;; esac
	docker push $(MLPOWER_IMAGE)
	docker push $(MLPOWER_SLIM_IMAGE)

standins:
	bash scripts/build_standin_images.sh

# deploy/requirements.txt: the image's dependencies, pinned with hashes (after editing pyproject.toml)
lock:
	bash scripts/lock_requirements.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
