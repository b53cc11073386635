# govshare: the two set-up commands are `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test test-fast bench serve airflow clean

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
