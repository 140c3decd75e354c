# One entry point for a fresh machine: every target creates the environment it needs, from the lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
IMAGE_LOCK := requirements-image.lock
# The lock: every extra and the install tools, hashed, for every platform, Python 3.11. The image's lock
# is the runtime's share of it, at the same versions and hashes (README "Development").
COMPILE := $(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 --custom-compile-command "make lock"

.PHONY: demo test bench lock upgrade clean

# The environment is made anew whenever the lock changes: exactly the lock's versions, checked by hash,
# then the project itself without dependencies (and with the lock's setuptools, not a build-time one).
$(STAMP): $(LOCK) pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/learner --log-level WARNING local --limit 20000

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest stream learner tests

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

# After editing pyproject.toml's ranges: resolve again, keeping every version the ranges still allow. It
# needs only the lock's uv, not the project installed (whose check fails while a new dependency is unlocked).
lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet \
		--disable-pip-version-check --require-hashes --no-deps -r $(LOCK); }
	$(COMPILE) pyproject.toml requirements.in --all-extras -o $(LOCK)
	$(COMPILE) pyproject.toml requirements.in -c $(LOCK) -o $(IMAGE_LOCK)

# The deliberate upgrade: the newest versions the ranges allow, then the whole suite against them in an
# environment made anew. Commit requirements*.lock when it is green.
upgrade: $(STAMP)
	$(COMPILE) pyproject.toml requirements.in --all-extras --upgrade -o $(LOCK)
	$(COMPILE) pyproject.toml requirements.in -c $(LOCK) -o $(IMAGE_LOCK)
	$(MAKE) test

clean:
	rm -rf $(VENV) build *.egg-info
