# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= demo-output

.PHONY: demo test setup browser lint bench clean

setup: $(STAMP)

# Reinstall only when pyproject.toml is newer than the last install. --no-cache-dir: torch's CUDA build is
# several GB, and a second copy in pip's cache has filled a CI machine's disk before.
PIP := $(BIN)/pip install --quiet --no-cache-dir
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	# torch first: these exact versions come from the machine's local cache.
	$(PIP) torch==2.14.1 torchvision==0.29.1
	$(PIP) -e '.[test,interop]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/probe demo --out $(OUT)

browser:
	sh scripts/ensure_chromium.sh

# Lint (ruff's rules and format) and types (mypy on probe, backbones, unsupervised), as pyproject.toml sets them.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# pytest exits 5 when it collected no tests: that is a broken suite, not a pass.
test: $(STAMP) browser lint
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5)" >&2; exit 1; fi; \
	exit $$rc

bench: $(STAMP)
	$(BIN)/probe bench

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
