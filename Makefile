# Two entry points, each one command on a fresh machine with Python 3.11+ and make:
#   make demo   set up .venv, build the demo archive, scan, infer, materialize, show the result
#   make test   set up .venv, lint, run the test suite
# Training the shipped model (Debian packages needed, installed by the target when run as root):
#   make dataset && make model
# The first interpreter that runs and is 3.11 or newer (a pyenv shim may exist for a version that is not active).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := build/demo
DRUMCAT := $(BIN)/drumcat --catalog $(DEMO)/drumcat.db
DATASET := build/dataset

.PHONY: demo test lint docs bench dataset model clean test-tools

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "drumcat needs Python 3.11 or newer: install it, or pass PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plot,train]'
	@# An editable install compiles none of drumcat's own modules; where PYTHONDONTWRITEBYTECODE is set (as on
	@# the machines this project is tested on) every command compiled them again: 0.06 s of each `drumcat` run.
	$(BIN)/python -m compileall -q drumcat >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/drumcat demo-archive $(DEMO)/archive
	$(DRUMCAT) scan $(DEMO)/archive
	$(DRUMCAT) infer
	$(DRUMCAT) stats
	$(DRUMCAT) materialize --view organized_default --out $(DEMO)/organized
	@echo
	@echo "Organized tree: $(DEMO)/organized  (browse it, or: ls -R $(DEMO)/organized)"
	@echo "Catalog:        $(DRUMCAT) query 'SELECT * FROM routed'   (or sqlite3 $(DEMO)/drumcat.db)"
	@echo "Review page:    $(DRUMCAT) serve   then open http://127.0.0.1:8765/ (hear, browse, correct; Ctrl-C stops it)"

test: $(STAMP) test-tools
	$(BIN)/ruff check drumcat tests bench docs
	$(BIN)/python -m pytest -q

# Debian packages some tests use: the sqlite3 command line, Chromium (the review page's browser tests) and
# hydrogen-data (Hydrogen's drumkit.xsd, which kit files are validated against). Installed where we may
# (root with apt); elsewhere those tests are skipped, each with a note saying what is missing.
TEST_PACKAGES := sqlite3 chromium hydrogen-data
test-tools:
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$missing >/dev/null 2>&1; } || \
	    echo "note: could not install $$missing; the tests that use them will be skipped"; \
	  else echo "note: $$missing not installed; the tests that use them will be skipped"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check drumcat tests bench docs

bench: $(STAMP)
	$(BIN)/python bench/scan.py
	$(BIN)/python bench/infer.py
	$(BIN)/python bench/materialize.py
	$(BIN)/python bench/review_order.py
	$(BIN)/python bench/duplicates_memory.py
	$(BIN)/python bench/regroup.py

# The training set, from Debian packages (see drumcat/model/train/dataset.py). Clips and caches stay in build/.
dataset: $(STAMP)
	@packages=$$($(BIN)/python -c 'from drumcat.model.train.dataset import DEBIAN_PACKAGES; print(*DEBIAN_PACKAGES)'); \
	missing=$$(for p in $$packages; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "install these Debian packages first: sudo apt-get install $$missing"; exit 1; fi; \
	fi
	$(BIN)/python -m drumcat.model.train.dataset --out $(DATASET)

model: $(STAMP)
	test -f $(DATASET)/manifest.csv || $(MAKE) dataset
	$(BIN)/drumcat train --dataset $(DATASET) --out models/drumcat-v2.keras --seeds 1,2,3 --members 2 --lite-weights int8  # ships seed 1

clean:
	rm -rf build .pytest_cache
