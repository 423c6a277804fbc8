"""`make demo`, run as a user runs it (a process of its own, its own local stack): every step it
promises shows what it says, with no token printed in full."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from devstack.template import ROOT

pytestmark = pytest.mark.slow


def test_the_demo_shows_every_step_it_promises() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "devstack.local.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    out = finished.stdout
    assert re.search(r"1\. cold start.* from the authorization server", out)
    assert re.search(r"2\. same container again.* from the memory tier", out)
    assert re.search(r"3\. a fresh container.* from the DynamoDB tier", out)
    assert out.count("ERROR") == 2  # the caller the profile does not admit, and the one without a proof
    assert re.search(r"6\. aws_web_identity_token .*token#", out)
    assert re.search(r"9\. the broker .*token_type=DPoP .*\(= the token cnf\.jkt\)", out)
    assert "10. token_client to the API        200, then 200 (the API saw 401, 200, 200" in out
    assert "11. one proof sent twice           200, then 401" in out
    assert "Traceback" not in finished.stderr
    assert '"_aws"' not in out  # the handler's metrics are not the demo's output
    for token in re.findall(r'"access_token": "([^"]+)"', out):
        assert token == "..."
