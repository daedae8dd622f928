# backupd: newcomer commands. `make run` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench check-config clean deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

deps: $(STAMP)

## run: the daemon in the foreground on the embedded default (local destination under ./var)
run: $(STAMP)
	$(PY) -m backupd.cli.daemon_main --config etc/dev.toml --run-at-start

## test: the whole suite
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

check-config: $(STAMP)
	$(PY) -m backupd.cli.daemon_main --check-config --config etc/backupd.toml

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
