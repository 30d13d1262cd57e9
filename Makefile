# eirlab: two commands on a fresh machine.
#   make demo   sets everything up and runs the main job
#   make test   sets everything up and passes the tests
SHELL := /bin/bash
# Debian's CPython is built with PGO and LTO: about 25% faster on our hot paths than a plain build
# (measured: BENCHMARKS.md). Fall back to whatever python3 is first on PATH.
PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-deps lint typecheck test test-fast test-sctp bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@bash scripts/ensure-system-deps.sh venv
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

# The README's first command: an EIR on the embedded store, seeded from the demo scenario, a 10,000-
# subscriber attach run with every category, the verdict table, the HTML report and the pcap.
demo: install system-deps
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Register benchmarks (issue 4); ROWS defaults to 10M as in BENCHMARKS.md. Not part of make test.
ROWS ?= 10000000
bench-register: install
	$(PY) -m bench.register_import --rows $(ROWS)
	$(PY) -m bench.register_decisions --rows $(ROWS) --ranges 10000
