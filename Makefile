# One command per habit. Each target creates the virtual environment first when needed.
PYTHON ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CHECKOV := .venv-checkov/bin/checkov


.PHONY: test lint demo serve bench clean
export SAM_CLI_TELEMETRY := 0

$(INSTALLED): requirements-dev.txt layers/broker_deps/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.13 (Lambda's runtime)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

test: $(INSTALLED)
	$(BIN)/python -m pytest

lint: $(INSTALLED) $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy functions/example_consumer
	$(BIN)/bandit --quiet --recursive functions layers devstack --configfile pyproject.toml
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint
	$(BIN)/sam validate --region us-east-1
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download

# checkov pins an older boto3 than the project's, so it gets an environment of its own
$(CHECKOV): requirements-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

demo: $(INSTALLED)
	$(BIN)/python -m devstack.demo

serve: $(INSTALLED)
	$(BIN)/python -m devstack.serve

bench: $(INSTALLED)
	$(BIN)/python -m devstack.bench

clean:
	rm -rf $(VENV) .venv-checkov .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
