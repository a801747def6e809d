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
# pebble brings pebble-challtestsrv; the rest are ACME clients and servers nobody here wrote.
APT_PEERS := pebble lego dehydrated uacme acme-tiny caddy apache2 libapache2-mod-md bind9
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck unit peers clean bench bench-clients

$(BIN)/.installed: pyproject.toml requirements/dev.txt requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e . -r requirements/dev.txt
	touch $@

run: $(BIN)/.installed
	$(BIN)/certsmith serve --data-dir $(DATA_DIR) --listen $(LISTEN) --http01-port $(HTTP01_PORT)

# Peer ACME software nobody here wrote: Debian packages when missing, certbot from PyPI.
# A policy-rc.d (when none exists) keeps apache2 and caddy from starting on 80/443.
peers: $(CERTBOT_VENV)/.installed
	@missing=""; for pkg in $(APT_PEERS); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; \
	    printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; \
	    $(SUDO) chmod +x /usr/sbin/policy-rc.d; fi; \
	  $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	  status=$$?; [ -z "$$guard" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d; exit $$status; \
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

bench-clients: $(BIN)/.installed peers
	$(BIN)/python bench/clients.py

clean:
	rm -rf $(VENV) $(BUILD) .pytest_cache .mypy_cache .ruff_cache
