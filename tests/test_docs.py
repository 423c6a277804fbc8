"""The docs are tests: every profile they show passes the broker's own parser, every
`token-broker-admin` command they give is one the CLI takes, and every `aws` command they give
names a real operation of the installed botocore. What a new team copies from them works."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from broker.profiles import parse_profile
from devstack.template import ROOT
from tests.conftest import SECRETS_USED
from tests.credentials import certificate_pem, private_key, private_pem
from token_broker_admin.cli import parser

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code(path: Path) -> list[str]:
    """The code blocks and inline code of a Markdown file."""
    text = path.read_text()
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL) + re.findall(r"`([^`\n]+)`", text)


def profiles() -> list[tuple[str, dict[str, Any]]]:
    """Every profile document the docs show (a JSON object with a `token_url`)."""
    found = []
    for path in DOCS:
        for block in re.findall(r"```json\n(.*?)```", path.read_text(), re.DOTALL):
            document = json.loads(block)
            if isinstance(document, dict) and "token_url" in document:
                found.append((f"{path.name}: {document['client_id']}", document))
    return found


def filled(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its `…` placeholders for secrets and keys made real, as a reader fills them."""
    key = private_key("rsa")
    real = {
        "client_secret": "a-client-secret-from-the-authorization-server",
        "private_key": private_pem(key, SECRETS_USED),
        "certificate": certificate_pem(key),
    }
    return {name: real[name] if "…" in str(value) and name in real else value for name, value in document.items()}


@pytest.mark.parametrize(("where", "document"), profiles(), ids=[where for where, _ in profiles()])
def test_every_profile_in_the_docs_passes_the_brokers_parser(where: str, document: dict[str, Any]) -> None:
    profile = parse_profile("from-the-docs", json.dumps(filled(document)))

    assert profile.allowed_callers, where  # a profile without them admits nobody, and is refused
    assert "…" not in json.dumps(document, ensure_ascii=False).replace('"…"', "").replace("\\n…", "")


def test_the_docs_show_a_profile_for_every_identity_provider_they_promise() -> None:
    hosts = " ".join(document["token_url"] for _, document in profiles())
    for provider in ("okta.com", "auth0.com", "login.microsoftonline.com", "amazoncognito.com", "realms/"):
        assert provider in hosts


def admin_commands() -> list[str]:
    commands = set()
    for path in DOCS:
        for snippet in code(path):
            commands |= {match.strip() for match in re.findall(r"token-broker-admin ([^`\n]+)", snippet)}
    return sorted(commands)


@pytest.mark.parametrize("command", admin_commands())
def test_every_token_broker_admin_command_in_the_docs_is_one_the_cli_takes(command: str) -> None:
    if " " not in command:  # the command named, as in "store it with `token-broker-admin put`"
        assert command in {"check", "put", "list", "try", "key", "evict", "delete"}
        return
    words = re.sub(r"\[([^\]]*)\]", r"\1", command)  # optional parts, given
    words = re.sub(r"<[^>]+>|\bNAME\b|…", "orders-api", words).replace("FILE", "orders.json")
    parser().parse_args(words.split())  # exits (SystemExit) on anything it does not take


def test_the_docs_use_every_command_of_the_cli() -> None:
    assert {command.split()[0] for command in admin_commands()} >= {
        "check",
        "put",
        "list",
        "try",
        "key",
        "evict",
        "delete",
    }


# The AWS CLI's own commands, which are not API operations.
CLI_COMMANDS = {("cloudformation", "deploy"), ("cloudformation", "package")}


def aws_commands() -> list[tuple[str, str]]:
    commands = set()
    for path in DOCS:
        for snippet in code(path):
            commands |= set(re.findall(r"\baws ([a-z0-9-]+) ([a-z0-9-]+)", snippet))
    return sorted(commands)


@pytest.mark.parametrize(("service", "command"), aws_commands(), ids=[" ".join(c) for c in aws_commands()])
def test_every_aws_command_in_the_docs_names_a_real_operation(service: str, command: str) -> None:
    if (service, command) in CLI_COMMANDS:
        return
    model = botocore.session.get_session().get_service_model(service)
    operations = {xform_name(name, "-") for name in model.operation_names}
    assert command in operations, f"aws {service} {command}: botocore knows no such operation"


def test_the_docs_give_aws_commands_to_check() -> None:
    assert {"sts", "cloudformation", "iam", "cloudtrail"} <= {service for service, _ in aws_commands()}


def readme_consumer_templates() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### From another Lambda: the layer") : readme.index("### The client")]
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)


@pytest.mark.slow
def test_the_consumer_templates_in_the_readme_pass_cfn_lint(tmp_path: Path) -> None:
    import subprocess
    import sys

    snippets = readme_consumer_templates()
    assert len(snippets) == 2  # this account's, and another account's of the Organization
    for number, snippet in enumerate(snippets):
        body = snippet if snippet.startswith(("Parameters:", "Resources:")) else f"Resources:\n{snippet}"
        template = f"Transform: AWS::Serverless-2016-10-31\n{body}"
        template = template.replace(
            "      Layers:", "      Runtime: python3.13\n      Handler: app.handler\n      CodeUri: .\n      Layers:", 1
        )
        path = tmp_path / f"consumer-{number}.yaml"
        path.write_text(template)
        finished = subprocess.run(
            [str(Path(sys.executable).parent / "cfn-lint"), str(path)], capture_output=True, text=True, check=False
        )
        assert finished.returncode == 0, finished.stdout + finished.stderr
