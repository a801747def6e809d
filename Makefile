# certsmith: `make run` starts the CA, `make test` proves everything.
PYTHON ?= python3
VENV ?= .venv
BUILD ?= build
DATA_DIR ?= data
LISTEN ?= 127.0.0.1:14000
HTTP01_PORT ?= 5002
PYTEST_ARGS ?=

BIN := $(VENV)/bin
CERTBOT_VENV := $(BUILD)/certbot
APT_PEERS := pebble lego
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck unit peers clean bench

$(BIN)/.installed: pyproject.toml requirements/dev.txt requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e . -r requirements/dev.txt
	touch $@

run: $(BIN)/.installed
	$(BIN)/certsmith serve --data-dir $(DATA_DIR) --listen $(LISTEN) --http01-port $(HTTP01_PORT)

# Peer ACME software nobody here wrote: Debian packages when missing, certbot from PyPI.
peers: $(CERTBOT_VENV)/.installed
	@missing=""; for pkg in $(APT_PEERS); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

$(CERTBOT_VENV)/.installed: requirements/certbot.txt
	$(PYTHON) -m venv $(CERTBOT_VENV)
	$(CERTBOT_VENV)/bin/pip install --quiet --upgrade pip
	$(CERTBOT_VENV)/bin/pip install --quiet -r requirements/certbot.txt
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/.installed
	$(BIN)/mypy --strict src

test: $(BIN)/.installed peers lint typecheck
	CERTBOT=$(CURDIR)/$(CERTBOT_VENV)/bin/certbot $(BIN)/pytest $(PYTEST_ARGS)

bench: $(BIN)/.installed peers
	$(BIN)/python bench/compare.py

clean:
	rm -rf $(VENV) $(BUILD) .pytest_cache .mypy_cache .ruff_cache
