# Evident — the README's two commands are `make run` and `make test`; both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
N      ?= 200

.PHONY: setup run test full-refresh bench chaos lint docs lock clean

setup: $(STAMP)

# Re-install only when the lock or the project metadata changed.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required (found $$($(PYTHON) --version))"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

LANDING := $(or $(EVIDENT_LANDING_DIR),data/landing)

# The main job on embedded DuckDB; a first run generates the bundled sample into the landing dir.
run: setup
	@test -n "$$(find '$(LANDING)' -name '*.jsonl' -o -name '*.csv' 2>/dev/null | head -n 1)" || \
	  $(BIN)/evident sample --out '$(LANDING)'
	$(BIN)/evident run

full-refresh: setup
	$(BIN)/evident run --full-refresh

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m benchmarks.run

chaos: setup
	$(BIN)/python -m tests.chaos --kill-points $(N)

# ruff (style, imports, names used out of scope), mypy on the package, sqlfluff with the dbt templater.
lint: setup
	$(BIN)/ruff check python_ingest tests benchmarks
	$(BIN)/mypy
	EVIDENT_DUCKDB_PATH=:memory: $(BIN)/sqlfluff lint dbt_project  # :memory: — see .sqlfluff

docs: setup
	$(BIN)/evident docs

# Refresh the lock from a clean environment (needs the package index).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# Locked, fully pinned dependency set (pip freeze of a clean install of pyproject.toml[dev])."; \
	  echo "# Regenerate: make lock"; .venv-lock/bin/python -m pip freeze --exclude-editable; } > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) warehouse target dbt_project/target
