# One command per habit. Each target creates the virtual environment first when needed.
PYTHON ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
LOCAL_INSTALLED := $(VENV)/.local-installed
TOOLS := .venv-tools/bin
TOOLS_INSTALLED := .venv-tools/.installed


# Every install is from a lock file with hashes (`make lock` writes them from the *.in files).
PIP_INSTALL = python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps
# Locks are resolved against PyPI alone, whatever pip configuration the machine has.
PIP_COMPILE = $(TOOLS)/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --pip-args=--isolated

.PHONY: test test-fast lint format lock build dist dist-check smoke-deps smoke demo serve bench clean
export SAM_CLI_TELEMETRY := 0

# The project itself, editable: the operator CLI .venv/bin/token-broker-admin (every target that
# makes .venv installs it; its build backend comes from the lock, hash-checked).
INSTALL_PROJECT = $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --editable .

# The tests and tools (requirements-dev.txt holds the local stack too).
$(INSTALLED): requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.13 (Lambda's runtime)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) -r requirements-dev.txt
	$(INSTALL_PROJECT)
	touch $@ $(LOCAL_INSTALLED)

# Only the broker's runtime, the local stack and the operator CLI, for `make demo` and `make serve`.
$(LOCAL_INSTALLED): requirements-local.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.13 (Lambda's runtime)"; exit 1; }
	@echo "First run: installing the broker's runtime and the local stack into $(VENV) (34 packages, about 140 MB; under a minute with a warm pip cache)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) -r requirements-local.txt
	$(INSTALL_PROJECT)
	touch $@

# One worker per core (pytest-xdist): each starts its own local stack, on ports of its own.
PYTEST := $(BIN)/python -m pytest --numprocesses=auto

test: $(INSTALLED)
	$(PYTEST)

# The protocol, the doors and the adapters, without processes, builds and outside tools, and
# with fewer generated examples: what a developer runs between edits.
test-fast: $(INSTALLED)
	$(PYTEST) -m "not processes and not slow" --hypothesis-profile=fast

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Refreshes every lock file from its *.in: the layers first, since the others are held to them.
lock: $(TOOLS_INSTALLED)
	$(PIP_COMPILE) -o layers/broker_deps/requirements.txt layers/broker_deps/requirements.in
	$(PIP_COMPILE) -o layers/broker_crypto/requirements.txt layers/broker_crypto/requirements.in
	$(PIP_COMPILE) -o requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) --constraint requirements-dev.txt -o requirements-local.txt requirements-local.in
	$(PIP_COMPILE) -o requirements-consumer.txt requirements-consumer.in
	$(PIP_COMPILE) -o requirements-tools.txt requirements-tools.in
	$(PIP_COMPILE) -o requirements-release.txt requirements-release.in

lint: $(INSTALLED) $(TOOLS_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy functions/example_consumer
	$(BIN)/bandit --quiet --recursive functions layers devstack scripts admin --configfile pyproject.toml
	$(BIN)/cfn-lint template.yaml bootstrap.yaml docs/profile-role.yaml
	$(BIN)/sam validate --lint
	$(BIN)/sam validate --region us-east-1
	$(TOOLS)/checkov --file template.yaml --file bootstrap.yaml --file docs/profile-role.yaml --framework cloudformation --compact --quiet --skip-download
	$(BIN)/python -m devstack.deploy.iam_audit
	$(TOOLS)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(TOOLS)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(TOOLS)/zizmor --offline --persona auditor .github
	$(MAKE) build

$(TOOLS_INSTALLED): requirements-tools.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.13 (Lambda's runtime)"; exit 1; }
	test -x .venv-tools/bin/python || $(PYTHON) -m venv .venv-tools
	.venv-tools/bin/$(PIP_INSTALL) -r requirements-tools.txt
	touch $@

# sam build finds python3.13 on PATH; the environment's comes first. Then every module that
# ships gets its bytecode (Lambda's /var/task and /opt are read-only: none is written there), and
# the build fails for any without. Prints what it built.
build: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam build --parallel
	$(BIN)/python -m devstack.measure.bytecode
	$(BIN)/python -m devstack.measure.artifacts

# token_client's release files in .dist/: the wheel and sdist, built once with the locked build
# tools (the release workflow attests and publishes exactly these).
dist:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.13"; exit 1; }
	rm -rf .dist .venv-release layers/token_client/build layers/token_client/python/*.egg-info
	$(PYTHON) -m venv .venv-release
	.venv-release/bin/$(PIP_INSTALL) -r requirements-release.txt
	.venv-release/bin/python -m build --no-isolation --outdir .dist layers/token_client
	rm -rf layers/token_client/build layers/token_client/python/*.egg-info
	@ls .dist

# The wheel, as a user installs it: a fresh environment, its dependencies from their lock with
# hashes, then the wheel alone; it must import and say its version.
dist-check:
	rm -rf .venv-dist-check
	$(PYTHON) -m venv .venv-dist-check
	.venv-dist-check/bin/$(PIP_INSTALL) -r requirements-consumer.txt
	.venv-dist-check/bin/python -m pip install --quiet --disable-pip-version-check --no-deps .dist/token_client-*.whl
	cd / && $(CURDIR)/.venv-dist-check/bin/python -c 'import token_client; print("token_client", token_client.__version__, "installs from its lock")'

# The smoke test's packages, for the pipeline's artifact: its deploy jobs install nothing.
smoke-deps: $(INSTALLED)
	rm -rf .smoke-deps
	$(BIN)/$(PIP_INSTALL) --target .smoke-deps -r requirements-consumer.txt

# A deployed stage, with your own AWS credentials: make smoke STACK=token-broker-dev [PROFILE=...]
smoke: $(INSTALLED)
	@test -n "$(STACK)" || { echo "usage: make smoke STACK=token-broker-dev [PROFILE=okta-default] (STACK: the deployed stage's stack; your AWS credentials and region from the environment)" >&2; exit 2; }
	$(BIN)/python scripts/smoke.py --stack "$(STACK)" $(if $(PROFILE),--profile "$(PROFILE)")

demo: $(LOCAL_INSTALLED)
	$(BIN)/python -m devstack.local.demo

serve: $(LOCAL_INSTALLED)
	$(BIN)/python -m devstack.local.serve

# Measured on what ships: the build first.
bench: build
	$(BIN)/python -m devstack.measure.bench

clean:
	rm -rf $(VENV) .venv-tools .venv-release .venv-dist-check .aws-sam .bench .dist .smoke-deps .pytest_cache .mypy_cache .ruff_cache .hypothesis
