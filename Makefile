# One command per habit. Each target creates the virtual environment first when needed.
PYTHON ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TOOLS := .venv-tools/bin
TOOLS_INSTALLED := .venv-tools/.installed


.PHONY: test lint build demo serve bench clean
export SAM_CLI_TELEMETRY := 0

$(INSTALLED): requirements-dev.txt layers/broker_deps/requirements.txt layers/broker_crypto/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.13 (Lambda's runtime)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

test: $(INSTALLED)
	$(BIN)/python -m pytest

lint: $(INSTALLED) $(TOOLS_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy functions/example_consumer
	$(BIN)/bandit --quiet --recursive functions layers devstack --configfile pyproject.toml
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint
	$(BIN)/sam validate --region us-east-1
	$(TOOLS)/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download
	$(TOOLS)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(TOOLS)/zizmor --offline --min-severity low .github/workflows
	$(MAKE) build

$(TOOLS_INSTALLED): requirements-tools.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.13 (Lambda's runtime)"; exit 1; }
	test -x .venv-tools/bin/python || $(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

# sam build finds python3.13 on PATH; the environment's comes first. Prints what it built.
build: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam build --parallel
	$(BIN)/python -m devstack.artifacts

demo: $(INSTALLED)
	$(BIN)/python -m devstack.demo

serve: $(INSTALLED)
	$(BIN)/python -m devstack.serve

bench: $(INSTALLED)
	$(BIN)/python -m devstack.bench

clean:
	rm -rf $(VENV) .venv-tools .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
