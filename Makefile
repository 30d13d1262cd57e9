# eirlab: two commands on a fresh machine.
#   make demo   sets everything up and runs the main job
#   make test   sets everything up and passes the tests
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-deps lint typecheck test test-fast test-sctp bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

system-deps:
	@bash scripts/ensure-system-deps.sh

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

# The whole suite: lint, types, unit + property + loopback + interop tests, then kernel SCTP in a VM.
test: install system-deps lint typecheck
	$(VENV)/bin/pytest -q
	$(MAKE) --no-print-directory test-sctp

test-fast: install
	$(VENV)/bin/pytest -q -m "not interop"

# Kernel SCTP tests inside a throwaway QEMU guest (this host's kernel has no SCTP); bounded in time.
test-sctp: install system-deps
	$(PY) scripts/run_sctp_vm.py

bench: install
	$(PY) -m bench.codec

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
