# bs4nn: the two commands of the README.
#   make demo   installs everything, then runs the pipeline on the shipped MNIST model
#   make test   installs everything, then runs the default test suite (what CI runs)
# Long regressions: make test-slow.  System tools (iverilog, gcc) come from apt, the rest from PyPI.

PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
OUT ?= out
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-deps python-deps demo test test-slow lint bench

install: system-deps python-deps

system-deps:
	@if ! command -v iverilog >/dev/null || ! command -v gcc >/dev/null || ! command -v make >/dev/null; then \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends iverilog gcc make libc6-dev; \
	fi

python-deps:
	$(PIP) install -q -e ".[dev]"

demo: install
	bs4nn data check
	bs4nn-export --to-bits mnist -o $(OUT)/bits
	bs4nn sim golden --manifest $(OUT)/bits
	bs4nn rtl --manifest $(OUT)/bits -o $(OUT)/core.v
	bs4nn sim cocotb --manifest $(OUT)/bits --images 200 --simulator verilator
	bs4nn build --board icebreaker --manifest $(OUT)/bits -o $(OUT)/icebreaker

test: install
	$(PYTHON) -m pytest

test-slow: install
	$(PYTHON) -m pytest -m slow

lint:
	ruff check . && ruff format --check .

bench: install
	$(PYTHON) tests/benchmarks/bench_golden.py
