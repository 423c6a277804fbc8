"""Cold starts, measured on what ships, as CPU time (what Lambda bills an init for, and what its
share of a vCPU stretches).

Each process is a clean interpreter (`-I -S`: no site-packages, no environment's paths; `-B`: it
writes no bytecode, as on Lambda's read-only filesystem) with the
folders Lambda gives a function on `sys.path`, in Lambda's order: the function's code
(`.aws-sam/build`, bytecode and all), its layers, then a runtime folder holding the SDK the
Python runtime brings (boto3, botocore and what they import; no `awscrt`, which the runtime does
not have), copied from this environment with their bytecode. Sides are run interleaved, so
that load on the machine affects all alike, and compared by their medians.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import statistics

# runs this interpreter on code of ours, with no shell
import subprocess  # nosec B404
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from devstack.measure.artifacts import BUILD
from devstack.measure.bytecode import compile_tree
from devstack.template import ROOT

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
WORK = ROOT / ".bench"
# What the Python runtime brings: the SDK and its dependencies.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
# The peer: a plain Lambda that fetches its own token with Authlib (and requests), as a layer.
PEER_PACKAGES = (
    "authlib",
    "joserfc",
    "requests",
    "certifi",
    "idna",
    "charset_normalizer",
    "cryptography",
    "cffi",
    "_cffi_backend.*.so",
    "pycparser",
)

# Processes per side: medians of 20, as the targets were set.
ROUNDS = 20
# A consumer Lambda: import token_client and get its first token (boto3 is imported for the
# session's credentials either way; `client` gives it a boto3 Lambda client, or not).
CONSUMER = """
import boto3
from token_client import TokenClient
assert TokenClient(function_name={function!r}{client}).get_token({profile!r})
"""
# A consumer's floor: what any Lambda that imports boto3 and makes one Invoke round trip pays.
CONSUMER_FLOOR = """
import boto3, urllib3
assert urllib3.request("POST", {url!r}, body={body!r}, headers={headers!r}).status == 200
"""
# The context Lambda passes, for a handler called outside Lambda.
CONTEXT = """
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "token-broker", 1024, "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:token-broker"
    client_context = None
    def get_remaining_time_in_millis(self):
        return 15000
"""
# The floor: what any Lambda that reads DynamoDB pays.
FLOOR = """
import boto3, urllib3
dynamodb = boto3.client("dynamodb")
secrets = boto3.client("secretsmanager")
dynamodb.get_item(TableName={table!r}, Key={{"cache_key": {{"S": "floor"}}}}, ConsistentRead=True)
"""
# The broker: import the handler (its init) and answer one request whose token is in the table.
BROKER = (
    CONTEXT
    + """
import app
answer = app.lambda_handler({event!r}, Context())
assert "access_token" in answer, answer
"""
)
# The peer: a Lambda that reads its client's secret and fetches a token itself, with Authlib.
PEER = """
import json, boto3
from authlib.integrations.requests_client import OAuth2Session
secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId={secret!r})["SecretString"])
session = OAuth2Session(secret["client_id"], secret["client_secret"], token_endpoint_auth_method="client_secret_basic")
assert session.fetch_token(secret["token_url"], grant_type="client_credentials")["access_token"]
"""


def copied(name: str, packages: Iterable[str]) -> Path:
    """A folder holding `packages` (names, or a pattern matching one file) from this
    environment, bytecode included, made once per lock of the environment."""
    folder = WORK / f"{name}-{_fingerprint(ROOT / 'requirements-dev.txt')}"
    if not folder.is_dir():
        staging = WORK / f"{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for pattern in packages:
            (source,) = SITE_PACKAGES.glob(pattern)
            if source.is_dir():
                shutil.copytree(source, staging / source.name)
            else:
                shutil.copy2(source, staging / source.name)
        staging.rename(folder)
    return folder


def runtime_folder() -> Path:
    return copied("runtime", RUNTIME_PACKAGES)


def peer_folder() -> Path:
    return copied("peer", PEER_PACKAGES)


def without_bytecode(folder: Path) -> Path:
    """A copy of a build folder as SAM's pip workflow leaves it, no bytecode at all, made afresh
    (the build may have changed since the last)."""
    copy = WORK / "no-bytecode" / "-".join(folder.relative_to(WORK if folder.is_relative_to(WORK) else BUILD).parts)
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def crypto_layer() -> Path:
    """The cryptography layer, built for this machine: the one `sam build` makes is for arm64 and
    cannot be imported here. The same locked versions, installed as pip installs them, compiled
    as `make build` compiles them."""
    requirements = ROOT / "layers/broker_crypto/requirements.txt"
    folder = WORK / f"host-crypto-{_fingerprint(requirements)}" / "python"
    if not folder.is_dir():
        install = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        target = ["--require-hashes", "--no-deps", "--target", str(folder), "-r", str(requirements)]
        subprocess.run([*install, *target], check=True)  # nosec B603
        compile_tree(folder)
    return folder


def _fingerprint(lock_file: Path) -> str:
    return hashlib.sha256(lock_file.read_bytes()).hexdigest()[:12]


def broker_paths(function: Path) -> list[Path]:
    """/var/task, then each layer's /opt/python, then the runtime's SDK."""
    return [function, BUILD / "BrokerDependencies/python", crypto_layer(), runtime_folder()]


def cpu_seconds(code: str, paths: list[Path], environment: dict[str, str]) -> float:
    """The CPU time (user and system) a clean interpreter takes to run `code` with `paths`."""
    bootstrap = f"import sys; sys.path[:0] = {[str(path) for path in paths]!r}\n{code}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(  # nosec B603
        [sys.executable, "-I", "-S", "-B", "-c", bootstrap],
        cwd=WORK,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **environment},
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def tracing_environment(port: int) -> dict[str, str]:
    """Tracing on, as `Tracing: Active` has it in Lambda; segments go to a port nobody reads."""
    return {
        "POWERTOOLS_TRACE_DISABLED": "false",
        "LAMBDA_TASK_ROOT": str(BUILD / "TokenBrokerFunction"),
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
        "_X_AMZN_TRACE_ID": "Root=1-6748d6e0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
    }


def measure(
    environment: dict[str, str], event: dict[str, object], secret_id: str, rounds: int = ROUNDS
) -> dict[str, float]:
    """The broker's cold start beside its floor, the broker as SAM's pip workflow alone would
    ship it (no bytecode), and the Authlib peer; and the ratios the targets are set on."""
    function = BUILD / "TokenBrokerFunction"
    bare = [without_bytecode(path) for path in broker_paths(function)[:3]] + [runtime_folder()]
    medians = interleaved(
        {
            "floor": (FLOOR.format(table=environment["TOKEN_TABLE_NAME"]), [runtime_folder()]),
            "broker": (BROKER.format(event=event), broker_paths(function)),
            "broker_without_bytecode": (BROKER.format(event=event), bare),
            "authlib_peer": (PEER.format(secret=secret_id), [peer_folder(), runtime_folder()]),
        },
        environment,
        rounds,
    )
    return {
        **medians,
        "ratio": round(medians["broker_ms"] / medians["floor_ms"], 3),
        "peer_ratio": round(medians["authlib_peer_ms"] / medians["floor_ms"], 3),
        "without_bytecode_ratio": round(medians["broker_without_bytecode_ms"] / medians["floor_ms"], 3),
    }


def measure_consumer(
    environment: dict[str, str], function_arn: str, profile: str, invoke: tuple[str, bytes, dict[str, str]]
) -> dict[str, float]:
    """A consumer's cold start (import, first token) with token_client as the layer ships it,
    beside the same with a boto3 Lambda client, and the floor: `import boto3` and one Invoke
    round trip (`invoke`: its URL, body and signed headers, made beforehand)."""
    paths = [BUILD / "TokenClientLayer/python", runtime_folder()]
    url, body, headers = invoke
    with_client = ', lambda_client=boto3.client("lambda")'
    medians = interleaved(
        {
            "consumer_floor": (CONSUMER_FLOOR.format(url=url, body=body, headers=headers), [runtime_folder()]),
            "consumer": (CONSUMER.format(function=function_arn, profile=profile, client=""), paths),
            "consumer_with_boto3_client": (
                CONSUMER.format(function=function_arn, profile=profile, client=with_client),
                paths,
            ),
        },
        environment,
        ROUNDS,
    )
    return {
        **medians,
        "ratio": round(medians["consumer_ms"] / medians["consumer_floor_ms"], 3),
        "boto3_client_ratio": round(medians["consumer_with_boto3_client_ms"] / medians["consumer_floor_ms"], 3),
    }


def interleaved(sides: dict[str, tuple[str, list[Path]]], environment: dict[str, str], rounds: int) -> dict[str, float]:
    """Medians of `rounds` processes per side, in CPU ms, run interleaved after one each to warm
    the OS's file cache."""
    WORK.mkdir(exist_ok=True)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for code, paths in sides.values():
        cpu_seconds(code, paths, environment)
    for _ in range(rounds):
        for name, (code, paths) in sides.items():
            times[name].append(cpu_seconds(code, paths, environment))
    return {f"{name}_ms": round(statistics.median(values) * 1000, 1) for name, values in times.items()}
