"""What ships carries its bytecode: every module of the functions and layers has a .pyc that the
interpreter loads as it is, with nothing compiled at a cold start (Lambda's /var/task and /opt
are read-only, and the init phase is billed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.measure.artifacts import BUILD
from devstack.measure.bytecode import compile_tree, without_bytecode
from devstack.template import ROOT

pytestmark = pytest.mark.slow


def loaded_from(folder: Path, module: str) -> dict[str, str]:
    """Where each module of `folder` came from when `module` was imported: its .pyc or its .py
    (`python -v`, with no bytecode written meanwhile)."""
    finished = subprocess.run(
        [sys.executable, "-v", "-c", f"import {module}"],
        cwd=folder,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(folder)},
        capture_output=True,
        text=True,
        check=True,
    )
    origins = re.findall(r"^# code object from '?(\S+?)'?$", finished.stderr, re.MULTILINE)
    return {origin: origin for origin in origins if origin.startswith(str(folder))}


def test_the_broker_compiled_as_make_build_compiles_it_loads_from_bytecode_alone(tmp_path: Path) -> None:
    # Given the function's code, compiled as `make build` compiles what sam build made
    function = shutil.copytree(ROOT / "functions/token_broker", tmp_path / "function")
    assert compile_tree(function)

    # Then every module has its .pyc, and importing the broker reads no source to compile it
    assert without_bytecode(function) == []
    origins = loaded_from(function, "broker.service, broker.renewal, broker.token_table")
    assert origins
    assert all(origin.endswith(".pyc") for origin in origins), [o for o in origins if not o.endswith(".pyc")]


@pytest.mark.skipif(not BUILD.is_dir(), reason="no .aws-sam/build: `make build` (make lint runs it) makes one")
def test_the_built_artifact_holds_bytecode_for_every_module() -> None:
    folders = [folder for folder in BUILD.iterdir() if folder.is_dir()]
    assert {folder.name for folder in folders} >= {"TokenBrokerFunction", "BrokerDependencies", "TokenClientLayer"}
    for folder in folders:
        assert without_bytecode(folder) == [], folder.name
