# Two entry points, each one command on a fresh machine with Python 3.11+ and make:
#   make demo   set up .venv, build the demo archive, scan, infer, materialize, show the result
#   make test   set up .venv, lint, run the test suite
PYTHON ?= $(shell command -v python3.12 || command -v python3.11 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := build/demo
DRUMCAT := $(BIN)/drumcat --catalog $(DEMO)/drumcat.db

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "drumcat needs Python 3.11+; set PYTHON=")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/drumcat demo-archive $(DEMO)/archive
	$(DRUMCAT) scan $(DEMO)/archive
	$(DRUMCAT) stats

test: $(STAMP)
	$(BIN)/ruff check drumcat tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check drumcat tests bench

bench: $(STAMP)
	$(BIN)/python bench/scan.py

clean:
	rm -rf build .pytest_cache
