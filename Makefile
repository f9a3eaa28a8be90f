# bench: two commands do everything on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Real data for the tests that use it (they skip cleanly without it).
ifneq ($(wildcard ../shared/data),)
export BENCH_SHARED_DATA ?= $(abspath ../shared/data)
endif

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,slurm,postgres]'
	touch $(STAMP)

# 2 workers of 1 thread each (the suite's `threads: 1`, on any machine: the demo's numerics)
demo: setup
	BENCH_THREADS=1 $(BIN)/bench run suites/demo.yaml --workers 2
	$(BIN)/bench report suites/demo.yaml --format markdown --format html --report-dir reports/demo

# test processes: one per core, at most 4 (each runs torch with 1 thread; tests/conftest.py)
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(JOBS) --dist worksteal; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

lint: setup
	$(BIN)/ruff check .

bench: setup
	@for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf runs reports/demo .pytest_cache
