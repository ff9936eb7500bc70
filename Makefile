# ryu-pptp-alg: every target installs what it needs first (scripts/setup.sh).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo lint unit clean

setup:
	@bash scripts/setup.sh

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

unit: setup
	$(PY) -m pytest tests/unit tests/crosscheck

demo: setup
	$(PY) mininet/demo.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .hypothesis
