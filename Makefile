# Two commands on a bare machine with Python 3.11+ and make:
#   make run   - the service, a worker and the platform sandbox on an embedded Postgres
#   make test  - every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint install clean bench chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: install
	$(BIN)/athos-identity dev

# The browser tests (tests/e2e) drive Debian's Chromium; Playwright never downloads one.
# Installed with apt when missing (CI runs as root); without it those tests fail, saying so.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    (apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	    || echo "warning: apt-get could not install chromium: tests/e2e will fail"; \
	  else \
	    echo "warning: $(CHROMIUM) missing and no apt-get: tests/e2e will fail"; \
	  fi; \
	fi

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .athos .pytest_cache
