# Every target creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Browser tests use Debian's /usr/bin/chromium; Playwright must never download one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test check lint format typecheck bench clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) ## start the relay on embedded defaults (with a local DingTalk emulator) and send one message of every type through it
	$(BIN)/python -m dingpush.demo

test: $(STAMP) ## run the whole test suite (installs Debian's chromium and prometheus-alertmanager when missing)
	@scripts/ensure-chromium
	@scripts/ensure-alertmanager
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP) ## rewrite sources with ruff format and the safe ruff fixes
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

check: lint typecheck test ## format check, lint, mypy --strict and the tests

bench: $(STAMP) ## run the benchmarks against the peers and write docs/benchmarks.md
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
