# One target per chore. `make run` and `make test` work on a fresh machine:
# they create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench install clean web

# The web client (web/) is built into web/dist, which `tidings serve` serves at
# `/`; rebuilt when a source or the lock file is newer than the build. Needs
# Node.js (npm); without it the server still runs and says the client is not built.
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/package.json \
	web/tsconfig.json web/vite.config.ts
WEB_DEPS := web/node_modules/.package-lock.json

$(WEB_DEPS): web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd web && npm ci --no-audit --no-fund; \
	else echo "npm not found: install Node.js >= 20.19 to build the web client"; fi

web/dist/index.html: $(WEB_DEPS) $(WEB_SOURCES)
	@if command -v npm >/dev/null 2>&1; then \
		cd web && npm run build; \
	else echo "npm not found: the web client (web/dist) is not built"; fi

web: web/dist/index.html

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP) web/dist/index.html
	$(BIN)/tidings serve

test: $(STAMP) web/dist/index.html
	PYTHONASYNCIODEBUG=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

bench: $(STAMP)
	$(BIN)/tidings bench timeline --backend sqlite

clean:
	rm -rf $(VENV) build dist src/*.egg-info web/dist web/node_modules
