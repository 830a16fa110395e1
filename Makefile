# Two commands for a fresh machine (each creates/uses .venv):
#   make run   install, index the seed reports on the offline default, start the chat UI
#   make test  install (with dev extras) and run the whole test suite
# After `make run`, the CLI is .venv/bin/assistant (or `source .venv/bin/activate`).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A checkout keeps its index in ./.data (git-ignored); an installed package uses the
# user's data folder unless ASSISTANT_DATA_DIR says otherwise.
export ASSISTANT_DATA_DIR ?= $(CURDIR)/.data

.PHONY: run test lint install ingest ui eval report calibrate screenshots bench clean

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

lint: install
	$(BIN)/ruff check assistant tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

# The offline eval gate, writing its report to a temp folder (tests never change tracked files).
eval: install
	$(BIN)/assistant eval --check --out "$$(mktemp -d)"

# Deliberate refreshes of committed artefacts. CMRC 2018 is read from the shared folder
# beside the checkout (CC BY-SA 4.0, never copied into the project).
CMRC ?= $(CURDIR)/../shared/benchmarks/cmrc2018/cmrc2018_dev.json

report: install
	$(BIN)/assistant eval --out evals/reports
	$(BIN)/assistant eval --gold evals/heldout/gold.jsonl --corpus evals/heldout/reports --corpus seeds \
	    --out evals/reports/heldout
	$(BIN)/assistant eval --gold evals/tuning/gold.jsonl --corpus evals/tuning/reports --corpus seeds \
	    --out evals/reports/tuning
	$(BIN)/assistant eval --benchmark cmrc2018 --data $(CMRC) --out evals/reports/cmrc2018

# Refit the extractive answerer's sentence model (ranker, gate, refusal threshold) on the
# tuning splits (CMRC questions outside its eval sample; the seed, paraphrase and evals/tuning
# gold sets, leave one report out).
calibrate: install
	$(BIN)/python -m assistant.evals.calibrate --cmrc $(CMRC) --out evals/reports/calibration \
	    --write-model assistant/data/sentence_model.json

screenshots: install
	SCREENSHOT_DIR=$(CURDIR)/docs $(BIN)/python -m pytest -q -m browser tests/test_ui_browser.py

bench: ingest
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/ask.py

clean:
	rm -rf .data
