# Two commands for a fresh machine (each creates/uses .venv):
#   make run   install, index seeds/ on the offline default, start the chat UI
#   make test  install (with dev extras) and run the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install ingest ui eval bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

ingest: install
	$(BIN)/assistant ingest seeds/

run: ingest
	$(BIN)/assistant ui

test: install
	$(BIN)/python -m pytest -q

eval: ingest
	$(BIN)/assistant eval --check

bench: ingest
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/ask.py

clean:
	rm -rf .data
