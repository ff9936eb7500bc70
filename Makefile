# ryu-pptp-alg: every target installs what it needs first (scripts/setup.sh).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo bench lint unit clean

setup:
	@bash scripts/setup.sh

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

unit: setup
	$(PY) -m pytest tests/unit tests/crosscheck

demo: setup
	$(PY) mininet/demo.py

bench: setup
	$(PY) bench/all.py $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .hypothesis
