"""token_client under `mypy --strict`, as a consumer type-checks it: its own annotations, and
boto3's objects typed as boto3-stubs types them (no import at run time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.template import ROOT

pytestmark = pytest.mark.slow

MISUSES = """
import boto3
from token_client import TokenClient

client = TokenClient(lambda_client="a client", session=boto3.session.Session())
client.get_token("p", scopes=5)
name: int = client.get_token("p")
"""


def mypy(folder: Path, source: str) -> subprocess.CompletedProcess[str]:
    consumer = folder / "consumer.py"
    consumer.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(consumer)],
        cwd=folder,
        env={**os.environ, "MYPYPATH": str(ROOT / "layers/token_client/python")},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_typed_consumer_passes_mypy_strict(tmp_path: Path) -> None:
    checked = mypy(tmp_path, (ROOT / "tests/consumers/typed_consumer.py").read_text())

    assert checked.returncode == 0, checked.stdout


def test_mypy_strict_catches_a_consumer_passing_the_wrong_things(tmp_path: Path) -> None:
    checked = mypy(tmp_path, MISUSES)

    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["5", "6", "7"], checked.stdout
    assert '"lambda_client"' in errors[0]
    assert '"scopes"' in errors[1]
