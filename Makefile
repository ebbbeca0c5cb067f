# `make demo` and `make test` each set themselves up from nothing (a fresh clone on a fresh machine).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build of torch first: fast where there is no GPU; the project's torch range accepts it.
	$(BIN)/python -m pip install --quiet "torch==2.13.0" || $(BIN)/python -m pip install --quiet "torch>=2.2,<3"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# the tests also run the Ray executor: `make test` adds the ray extra, `make demo` does without
$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/attnbt demo
	@echo "next: source $(VENV)/bin/activate, then attnbt --help (the README's Commands)"

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
