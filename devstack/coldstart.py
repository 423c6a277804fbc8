"""Cold start, measured as a fresh process: the broker's against the floor any Lambda that
talks to DynamoDB pays. Run by `make bench`; each side is a new interpreter, timed from spawn
to exit, both against the same local server, interleaved so that load affects both alike."""

from __future__ import annotations

import os
import statistics

# runs this interpreter on code of ours, with no shell
import subprocess  # nosec B404
import sys
import time

from devstack.lambda_host import FUNCTION_DIR, LAYER_DIRS
from devstack.template import ROOT

# The floor: import boto3, create the DynamoDB and Secrets Manager clients, one GetItem.
FLOOR = """
import boto3
dynamodb = boto3.client("dynamodb")
secrets = boto3.client("secretsmanager")
dynamodb.get_item(TableName={table!r}, Key={{"cache_key": {{"S": "floor"}}}}, ConsistentRead=True)
"""

# The broker: import the handler (a cold start) and serve one request from the table.
BROKER = """
import sys
sys.path[:0] = {paths!r}
from devstack.lambda_host import LambdaContext
import app
answer = app.lambda_handler({event!r}, LambdaContext())
assert "access_token" in answer, answer
"""


def run_once(code: str, environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **environment}, check=True)  # nosec B603
    return (time.perf_counter() - started) * 1000


def tracing_environment(port: int) -> dict[str, str]:
    """Tracing on, as `Tracing: Active` has it in Lambda; segments go to a port nobody reads."""
    return {
        "POWERTOOLS_TRACE_DISABLED": "false",
        "LAMBDA_TASK_ROOT": str(FUNCTION_DIR),
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
        "_X_AMZN_TRACE_ID": "Root=1-6748d6e0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
    }


def measure(environment: dict[str, str], event: dict[str, object], rounds: int = 15) -> dict[str, float]:
    """Medians of `rounds` fresh processes per side, interleaved, and their ratio."""
    floor_code = FLOOR.format(table=environment["TOKEN_TABLE_NAME"])
    broker_code = BROKER.format(paths=[str(FUNCTION_DIR), *map(str, LAYER_DIRS), str(ROOT)], event=event)
    floors, brokers = [], []
    run_once(floor_code, environment)  # warm the OS file cache for both
    run_once(broker_code, environment)
    for _ in range(rounds):
        floors.append(run_once(floor_code, environment))
        brokers.append(run_once(broker_code, environment))
    floor, broker = statistics.median(floors), statistics.median(brokers)
    return {"floor_ms": round(floor, 1), "broker_ms": round(broker, 1), "ratio": round(broker / floor, 3)}
