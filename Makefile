# govshare: the two set-up commands are `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test test-fast test-days bench serve airflow clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]' --config-settings editable_mode=compat
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)  ## create .venv, install, run the whole story on SQLite + ./var/storage
	@.ci/system-packages demo
	$(BIN)/govshare demo

test: $(STAMP)  ## the whole suite (GOVSHARE_REQUIRE_SERVICES=1 turns skips for missing services into failures)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## everything but the slow Airflow and demo runs
	$(BIN)/python -m pytest -m "not slow"

# The days that once broke a date-sensitive test: a Friday, a Saturday, a working Saturday (调休), the lunar
# New Year's Eve (除夕), a day whose 10-working-day clock reaches into the next year, and 31 December.
TEST_DAYS ?= 2026-12-04 2026-12-05 2026-02-28 2026-02-16 2026-12-17 2026-12-31
# Two days at a time: each day is its own pytest process with its own pinned clock, scratch databases and ports,
# and a day's tests wait on databases and browsers as much as on a core. Each day's output goes to
# var/test-days/DAY.log and is shown when the day fails.
TEST_DAYS_JOBS ?= 2
test-days: $(STAMP)  ## the date-sensitive tests (marker "clock") once on each of TEST_DAYS
	@mkdir -p var/test-days; printf '%s\n' $(TEST_DAYS) | xargs -P $(TEST_DAYS_JOBS) -I {} sh -c '\
	  if GOVSHARE_TEST_DAY={} $(BIN)/python -m pytest -q -m "clock and not slow" -p no:cacheprovider \
	      > var/test-days/{}.log 2>&1; then echo "== GOVSHARE_TEST_DAY={}: $$(tail -n 1 var/test-days/{}.log)"; \
	  else cat var/test-days/{}.log; echo "== GOVSHARE_TEST_DAY={} FAILED (var/test-days/{}.log)"; exit 1; fi'

bench: $(STAMP)  ## benchmarks: prints each figure and its ratio, writes var/bench.json
	$(BIN)/python -m bench

serve: $(STAMP)
	$(BIN)/govshare serve

airflow: $(STAMP)  ## Airflow standalone on the embedded default, with this dags/ folder
	GOVSHARE_HOME=$${GOVSHARE_HOME:-$(CURDIR)/var} AIRFLOW_HOME=$(CURDIR)/var/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__PARALLELISM=4 PATH=$(CURDIR)/$(BIN):$$PATH \
	$(BIN)/airflow standalone

clean:
	rm -rf var .pytest_cache
