# The two commands: `make run` (install, restore, train, serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Microsoft's Power Query parser (npm), which checks every powerbi/*.pq file in `make test`.
PQ_CHECK := powerbi/check
PQ_STAMP := $(PQ_CHECK)/node_modules/.installed
DUMP ?=
ROWS ?= 20000
DB ?= data/cashscore.duckdb
MODELS ?= models
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run restore train serve nightly test test-quick lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $(STAMP)

$(PQ_STAMP): $(PQ_CHECK)/package.json $(PQ_CHECK)/package-lock.json
	npm ci --prefix $(PQ_CHECK) --no-audit --no-fund --loglevel=error
	touch $(PQ_STAMP)

data/sample.sql.gz: | $(STAMP)
	$(BIN)/cashscore sample --rows $(ROWS) --out $@

# The real dump when DUMP=... names one (files or a folder), the bundled synthetic sample otherwise.
SOURCE = $(if $(DUMP),$(DUMP),data/sample.sql.gz)
SAMPLE = $(if $(DUMP),,data/sample.sql.gz)

restore: $(STAMP) $(SAMPLE)
	$(BIN)/cashscore restore $(SOURCE) --db $(DB)

train: restore
	$(BIN)/cashscore train --db $(DB) --models $(MODELS)

serve: train
	$(BIN)/cashscore score --table marts.applicants --into portfolio --db $(DB) --models $(MODELS)
	@echo "cashscore: dashboard on http://$(HOST):$(PORT)/, API on http://$(HOST):$(PORT)/v1/score, docs on http://$(HOST):$(PORT)/schema/swagger"
	$(BIN)/cashscore serve --host $(HOST) --port $(PORT) --models $(MODELS) --db $(DB)

run: serve

# The nightly job (deploy/nightly.sh) on DUMP, or on the bundled sample: restore, score the portfolio,
# fairness, the decision log's check and retention, then drift (exit 3 on an alert). Needs a model.
nightly: $(STAMP) $(SAMPLE)
	PATH="$(CURDIR)/$(BIN):$$PATH" CASHSCORE_DB=$(DB) CASHSCORE_MODELS=$(MODELS) deploy/nightly.sh $(SOURCE)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP) $(PQ_STAMP) lint
	$(BIN)/pytest

# The quick subset while working: everything but real-dump training, headless Chromium and the wheel run.
test-quick: $(STAMP) $(PQ_STAMP) lint
	$(BIN)/pytest -m "not slow"

# Every figure in the README's benchmark table, each beside its baseline. The README's figures come
# from the real dump: `make bench DUMP=../shared/data/alura-cash` (about 40 minutes on 2 cores).
bench: train
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark,bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/restore.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/protected_age.py --models $(MODELS) --train-db $(DB)
	$(BIN)/python bench/trees.py --models $(MODELS) --train-db $(DB)
	$(BIN)/python bench/serve.py --db $(DB) --models $(MODELS)
	$(BIN)/python bench/batch.py --models $(MODELS) --train-db $(DB)
	$(BIN)/python bench/monitor.py --models $(MODELS)
	$(BIN)/python bench/spark.py --models $(MODELS)

clean:
	rm -rf $(VENV) data .pytest_cache
