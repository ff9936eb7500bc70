# ryu-pptp-alg: every target installs what it needs first (scripts/setup.sh).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo bench lint unit compile clean fuzz

setup:
	@bash scripts/setup.sh

# Everything, compiled (as deployed); then the unit and cross-check suites once more on
# the Python sources, which run wherever no compiler is.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest
	RYU_PPTP_ALG_PURE=1 $(PY) -m pytest tests/unit tests/crosscheck

unit: setup
	$(PY) -m pytest tests/unit tests/crosscheck

# DEMO_ARGS="--seconds 120" or "--cli": longer to look at the web page.
demo: setup
	$(PY) mininet/demo.py $(DEMO_ARGS)

bench: setup
	$(PY) bench/all.py $(BENCH_ARGS)

# Every fuzz target, 1,030,000 inputs on one core, about 110 minutes (docs/fuzzing.md). The
# smallest input of each finding goes to FUZZ_CRASHES; FUZZ_ARGS=--scale 0.01 for a taste.
FUZZ_CRASHES ?= /tmp/ryu-pptp-alg-fuzz/crashes
fuzz: setup
	$(PY) -m tests.fuzz install
	$(PY) -m tests.fuzz campaign --crashes $(FUZZ_CRASHES) $(FUZZ_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# setup compiles the packet-in path whenever its sources changed; this rebuilds anyway.
# RYU_PPTP_ALG_PURE=1 runs the Python sources instead (ryu_pptp_alg/compiled.py).
compile: setup
	$(PY) scripts/compile.py --force

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis build
	find ryu_pptp_alg -name '*.so' -delete
	rm -f ryu_pptp_alg/compiled.json
