"""The supply chain: the pipeline that deploys the broker, and the locked dependencies it builds
from. Read as files, for the rules that keep untrusted code away from the deploy roles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from devstack.template import ROOT, load_template

WORKFLOW = load_template(ROOT / ".github/workflows/ci.yml")
JOBS: dict[str, Any] = WORKFLOW["jobs"]
RELEASE = load_template(ROOT / ".github/workflows/release.yml")
RELEASE_JOBS: dict[str, Any] = RELEASE["jobs"]
CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"
ATTEST_ACTION = "actions/attest-build-provenance"
PUBLISH_ACTION = "pypa/gh-action-pypi-publish"
# Current majors (all on node24), pinned by the full commit SHA of their release tags.
PINNED = {
    "actions/checkout": "3d3c42e5aac5ba805825da76410c181273ba90b1",  # v7.0.1
    "actions/setup-python": "5fda3b95a4ea91299a34e894583c3862153e4b97",  # v7.0.0
    CREDENTIALS_ACTION: "e6de054238d6b7531b4efff3b6587d9aade6a06c",  # v6.2.3
    "actions/upload-artifact": "043fb46d1a93c77aae656e7c1c64a875d1fc6a0a",  # v7.0.1
    "actions/download-artifact": "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",  # v8.0.1
    ATTEST_ACTION: "4d101475d8b20a2381f78447822ac1eab6504dd8",  # v4.2.2
    PUBLISH_ACTION: "dc37677b2e1c63e2034f94d8a5b11f265b73ba33",  # v1.14.2
}
# What installs a package or builds: none of it may run where AWS credentials are live.
INSTALLS_OR_BUILDS = ("pip", "make", "sam build", "npm", "uv ", "poetry", "setup.py", "curl", "wget")


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"].partition("@")[0] for step in job["steps"] if "uses" in step]


def credentialed_jobs() -> dict[str, Any]:
    return {name: job for name, job in JOBS.items() if CREDENTIALS_ACTION in uses(job)}


@pytest.mark.parametrize("workflow", [WORKFLOW, RELEASE], ids=["ci", "release"])
def test_the_workflows_use_current_actions_pinned_by_sha(workflow: dict[str, Any]) -> None:
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                action, _, ref = step["uses"].partition("@")
                assert PINNED.get(action) == ref, step["uses"]
    assert workflow["permissions"] == {"contents": "read"}
    assert "aws-access-key-id" not in str(workflow)


def test_no_job_holding_aws_credentials_installs_packages_or_builds() -> None:
    jobs = credentialed_jobs()
    assert set(jobs) == {"deploy-dev", "deploy-prod"}
    for name, job in jobs.items():
        assert uses(job) == ["actions/download-artifact", CREDENTIALS_ACTION], name
        for step in job["steps"]:
            command = step.get("run", "")
            assert not [word for word in INSTALLS_OR_BUILDS if word in command], (name, command)
    # the jobs that install and build never see a credential
    for name, job in JOBS.items():
        if name not in jobs:
            assert "id-token" not in job.get("permissions", {}), name


def test_deploy_jobs_deploy_the_build_jobs_artifact_dev_first_with_one_role_each() -> None:
    (upload,) = [step for step in JOBS["build"]["steps"] if "upload-artifact" in step.get("uses", "")]
    artifact = upload["with"]["path"].split()
    # the built template, and what it refers to outside the build folder (token_client's layer)
    assert {".aws-sam/build", "layers/token_client", "samconfig.toml", "scripts/smoke.py"} <= set(artifact)
    assert "make build" in " ".join(step.get("run", "") for step in JOBS["build"]["steps"])
    assert JOBS["deploy-dev"]["needs"] == "build"
    assert JOBS["deploy-prod"]["needs"] == "deploy-dev"  # prod follows dev's smoke test
    for name, environment in (("deploy-dev", "dev"), ("deploy-prod", "prod")):
        job = JOBS[name]
        assert job["environment"] == environment  # its own role, trusted for this environment only
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        (download,) = [step for step in job["steps"] if "download-artifact" in step.get("uses", "")]
        assert download["with"]["name"] == upload["with"]["name"]
        (credentials,) = [step for step in job["steps"] if CREDENTIALS_ACTION in step.get("uses", "")]
        assert credentials["with"]["allowed-account-ids"] == "${{ vars.AWS_ACCOUNT_ID }}"
        runs = " ".join(step.get("run", "") for step in job["steps"])
        assert "--template-file .aws-sam/build/template.yaml" in runs
        assert "scripts/smoke.py" in runs


def test_pull_requests_and_main_run_the_checks_and_the_readmes_test_command() -> None:
    runs = " ".join(step.get("run", "") for step in JOBS["check"]["steps"])
    assert "make lint" in runs
    assert "make test" in runs
    assert "permissions" not in JOBS["check"]


def test_a_release_is_built_once_without_credentials_and_published_by_trusted_publishing() -> None:
    triggers = RELEASE.get("on") or RELEASE[True]  # YAML 1.1 reads the key `on` as true
    assert triggers == {"push": {"tags": ["token-client-v*"]}}
    build = RELEASE_JOBS["build"]
    runs = [step.get("run", "") for step in build["steps"]]
    assert "make dist" in runs
    assert "make dist-check" in runs  # the wheel installs from its own lock, hash-checked
    assert any("GITHUB_REF_NAME#token-client-v" in run for run in runs)  # the tag is the package's version
    assert "permissions" not in build  # contents: read, and nothing else
    (upload,) = [step for step in build["steps"] if "upload-artifact" in step.get("uses", "")]
    # every later job takes exactly the files the build made, and builds or installs nothing
    for name in ("provenance", "github-release", "pypi"):
        job = RELEASE_JOBS[name]
        (download,) = [step for step in job["steps"] if "download-artifact" in step.get("uses", "")]
        assert download["with"]["name"] == upload["with"]["name"], name
        commands = " ".join(step.get("run", "") for step in job["steps"])
        assert not [word for word in INSTALLS_OR_BUILDS if word in commands], name
    (attest,) = [s for s in RELEASE_JOBS["provenance"]["steps"] if ATTEST_ACTION in s.get("uses", "")]
    assert attest["with"]["subject-path"] == ".dist/*"
    # nothing is released before the protected environment lets PyPI's job run, nor from a tag off main
    assert (RELEASE_JOBS["pypi"]["needs"], RELEASE_JOBS["github-release"]["needs"]) == ("provenance", "pypi")
    assert 'git merge-base --is-ancestor "$GITHUB_SHA" origin/main' in runs
    (checkout,) = [step for step in build["steps"] if "actions/checkout" in step.get("uses", "")]
    assert checkout["with"]["fetch-depth"] == 0
    # only the publishing job may ask for PyPI's OIDC token, and only in its environment; no password
    publish = RELEASE_JOBS["pypi"]
    assert publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    (step,) = [step for step in publish["steps"] if PUBLISH_ACTION in step.get("uses", "")]
    assert set(step["with"]) == {"packages-dir"}
    assert [name for name, job in RELEASE_JOBS.items() if "pypi" in str(job.get("environment"))] == ["pypi"]


LOCKS = {
    ROOT / "requirements-dev.in": ROOT / "requirements-dev.txt",
    ROOT / "requirements-local.in": ROOT / "requirements-local.txt",
    ROOT / "requirements-consumer.in": ROOT / "requirements-consumer.txt",
    ROOT / "requirements-tools.in": ROOT / "requirements-tools.txt",
    ROOT / "requirements-release.in": ROOT / "requirements-release.txt",
    ROOT / "layers/broker_deps/requirements.in": ROOT / "layers/broker_deps/requirements.txt",
    ROOT / "layers/broker_crypto/requirements.in": ROOT / "layers/broker_crypto/requirements.txt",
}
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;#]+)", re.MULTILINE)


def pins(path: Path) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version for name, version in PIN.findall(path.read_text())}


@pytest.mark.parametrize("source", LOCKS, ids=[str(path.relative_to(ROOT)) for path in LOCKS])
def test_every_requirement_is_locked_at_its_pin_with_hashes(source: Path) -> None:
    lock = LOCKS[source]
    locked = pins(lock)
    for name, version in pins(source).items():
        assert locked.get(name) == version, f"{name}=={version} in {source.name}: run make lock"
    # every locked requirement carries at least one hash, so pip installs in hash-checking mode
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n\n", 1)[-1].strip())
    for entry in entries:
        if not entry.startswith("#"):
            assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_layers_the_local_stack_and_the_development_environment_run_the_same_versions() -> None:
    development = pins(ROOT / "requirements-dev.txt")
    for lock in (
        "layers/broker_deps/requirements.txt",
        "layers/broker_crypto/requirements.txt",
        "requirements-local.txt",
    ):
        for name, version in pins(ROOT / lock).items():
            assert development.get(name) == version, (lock, name)


def test_the_demo_installs_only_the_runtime_and_the_local_stack() -> None:
    local = pins(ROOT / "requirements-local.txt")
    assert {"moto", "authlib", "flask", "aws-lambda-powertools", "cryptography"} <= set(local)
    assert not {"aws-sam-cli", "cfn-lint", "mypy", "hypothesis", "pytest", "ruff", "sympy"} & set(local)
    assert len(local) < len(pins(ROOT / "requirements-dev.txt")) / 3


def test_every_install_requires_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line or "PIP_INSTALL)" in line]
    assert installs
    assert "--require-hashes" in makefile.split("PIP_INSTALL =", 1)[1].splitlines()[0]
    # the others are the project itself, from this checkout, and token_client's wheel just built
    # in .dist/ by `make dist`: nothing is downloaded
    local = ("--no-deps --no-build-isolation --editable .", "--no-deps .dist/token_client-*.whl")
    assert all("PIP_INSTALL" in line or line.rstrip().endswith(local) for line in installs), installs
    assert "--upgrade pip" not in makefile


def test_dependabot_proposes_updates_for_every_lock_and_the_actions() -> None:
    config = load_template(ROOT / ".github/dependabot.yml")
    ecosystems = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(ecosystems) == {"pip", "github-actions"}
    lock_directories = {"/" + str(lock.parent.relative_to(ROOT)).strip(".") for lock in LOCKS.values()}
    assert set(ecosystems["pip"]["directories"]) == lock_directories
