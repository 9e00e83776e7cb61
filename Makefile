# The portal's two commands: `make run` (portal + demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(BIN)/python scripts/services.py --

.PHONY: run test lint secrets format install install-dev browser migrate manage bench bench-dashboard clean audit sbom tools lock load fuzz

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Every requirements file is pinned with hashes (`make lock` writes them): pip refuses any
# download whose hash is not the pinned one.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.txt
	touch $@

# requirements-dev.txt holds the runtime set too (compiled against requirements.txt's pins).
$(VENV)/.dev: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
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

lint: install-dev secrets
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Secrets scan of every tracked file against .secrets.baseline (false positives carry an inline
# `pragma: allowlist secret`; the hashed requirements files are excluded in the baseline).
secrets: install-dev  # pragma: allowlist secret
	git ls-files -z | xargs -0 $(BIN)/detect-secrets-hook --baseline .secrets.baseline  # pragma: allowlist secret

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

# The deeper schemathesis run: every operation with every role's token, FUZZ_EXAMPLES cases each
# (make test runs the same file with 5).
FUZZ_EXAMPLES ?= 100
fuzz: install-dev
	PORTAL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(SERVICES) $(BIN)/python -m pytest tests/test_api_fuzz.py $(PYTEST_ARGS)

# 50 concurrent API clients for 60 s against gunicorn on the demo data, then the unsecured
# baseline; exits 1 on any error.  `make load BENCH_ARGS="--seconds 20 --clients 10"` to shorten.
load: install-dev
	$(SERVICES) $(BIN)/python bench/load_api.py $(BENCH_ARGS)

# Supply chain: tools in their own virtualenv (their pins would clash with the app's).
TOOLS := .venv-tools/bin
$(TOOLS)/python: requirements-tools.txt
	$(PYTHON) -m venv .venv-tools
	$(TOOLS)/pip install --quiet --require-hashes -r requirements-tools.txt
	touch $@
tools: $(TOOLS)/python

# Recompile the pinned, hashed requirements from the *.in files (existing pins are kept unless
# the .in file changes; `make lock LOCK_ARGS=--upgrade` moves everything to the newest release).
PIP_COMPILE := $(TOOLS)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)
lock: tools
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) -o requirements-tools.txt requirements-tools.in

# Fails loudly (exit 3) when the vulnerability service cannot be reached; never a silent pass.
# The report is recorded for the monthly checklist either way (an unaudited run counts as failed).
audit: tools migrate
	rm -f var/pip-audit.json; status=0; $(TOOLS)/python scripts/dependency_audit.py || status=$$?; \
	if [ -s var/pip-audit.json ]; then \
	  $(SERVICES) $(BIN)/python manage.py record_scan --pip-audit var/pip-audit.json \
	  || { echo "audit: the scan could not be recorded" >&2; [ $$status -ne 0 ] || status=1; }; \
	fi; exit $$status

# CycloneDX SBOM of the pinned runtime requirements.
sbom: tools
	mkdir -p var
	$(TOOLS)/cyclonedx-py requirements requirements.txt --output-format JSON --output-file var/sbom.cdx.json
	@echo "SBOM written to var/sbom.cdx.json"

clean:
	rm -rf $(VENV) .venv-tools .pytest_cache .ruff_cache
