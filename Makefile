# The portal's two commands: `make run` (portal + demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(BIN)/python scripts/services.py --

.PHONY: run test lint format install install-dev browser migrate manage bench bench-dashboard clean audit sbom tools

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	$(SERVICES) $(BIN)/python scripts/run_portal.py

# The browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test: install-dev browser
	$(SERVICES) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install
	$(SERVICES) $(BIN)/python manage.py migrate --database owner

# make manage ARGS="portal_user create someone@example.com --role Analyst --team North"
manage: install
	$(SERVICES) $(BIN)/python manage.py $(ARGS)

bench: install-dev
	$(SERVICES) $(BIN)/python bench/customer_api.py $(BENCH_ARGS)

bench-dashboard: install-dev
	$(SERVICES) $(BIN)/python bench/dashboard_rls.py $(BENCH_ARGS)

# Supply chain: tools in their own virtualenv (their pins would clash with the app's).
TOOLS := .venv-tools/bin
$(TOOLS)/python: requirements-tools.txt
	$(PYTHON) -m venv .venv-tools
	$(TOOLS)/pip install --quiet -r requirements-tools.txt
	touch $@
tools: $(TOOLS)/python

# Fails loudly (exit 3) when the vulnerability service cannot be reached; never a silent pass.
audit: tools
	$(TOOLS)/python scripts/dependency_audit.py

# CycloneDX SBOM of the pinned runtime requirements.
sbom: tools
	mkdir -p var
	$(TOOLS)/cyclonedx-py requirements requirements.txt --output-format JSON --output-file var/sbom.cdx.json
	@echo "SBOM written to var/sbom.cdx.json"

clean:
	rm -rf $(VENV) .venv-tools .pytest_cache .ruff_cache
