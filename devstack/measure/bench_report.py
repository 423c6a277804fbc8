"""`make bench`'s one table: each figure beside its target, then the stampedes, the fleet in
trouble and DPoP."""

from __future__ import annotations

import json
from typing import Any

from devstack.measure import bench_dpop, bench_trouble
from devstack.measure.artifacts import FUNCTION_CODE_LIMIT, LAYER_LIMIT

MEMORY_HIT_TARGET_US = 60


def report(results: dict[str, Any]) -> None:
    print("\n| figure | measured | target |\n| --- | --- | --- |")
    for row in figures(results):
        print("| " + " | ".join(row) + " |")
    print(
        "\n| containers | cold key: token requests | refresh window: token requests | non-renewers waited "
        "p50 / max (ms) | errors |\n| --- | --- | --- | --- | --- |"
    )
    for s in results["stampedes"]:
        print(
            f"| {s['containers']} | {s['cold_key_token_requests']} (goal 1) | {s['refresh_window_token_requests']} "
            f"(goal 1) | {s['non_renewer_wait_ms_p50']} / {s['non_renewer_wait_ms_max']} | {s['errors']} |"
        )
    bench_trouble.report_slow_server(results["slow_server"])
    bench_trouble.report_trouble(results["trouble"])
    bench_dpop.report(results["dpop"], MEMORY_HIT_TARGET_US)


def figures(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The main table's rows: (figure, measured, target)."""
    cold, consumer, hot = results["cold_start"], results["consumer_cold_start"], results["hot_path"]
    rows = [
        ("cold start, CPU: floor (boto3, 2 clients, 1 GetItem)", f"{cold['floor_ms']} ms", "-"),
        (
            "cold start, CPU: broker as built (bytecode) / floor",
            f"{cold['ratio']} ({cold['broker_ms']} ms)",
            "<= 1.25, below the peer",
        ),
        (
            "cold start, CPU: Authlib Lambda (the peer) / floor",
            f"{cold['peer_ratio']} ({cold['authlib_peer_ms']} ms)",
            "-",
        ),
        (
            "cold start, CPU: broker without bytecode (SAM's pip workflow) / floor",
            f"{cold['without_bytecode_ratio']} ({cold['broker_without_bytecode_ms']} ms)",
            "-",
        ),
        (
            "consumer cold start, CPU: floor (import boto3, 1 Invoke round trip)",
            f"{consumer['consumer_floor_ms']} ms",
            "-",
        ),
        (
            "consumer cold start, CPU: token_client / floor",
            f"{consumer['ratio']} ({consumer['consumer_ms']} ms)",
            "<= 1.15",
        ),
        (
            "consumer cold start, CPU: token_client with a boto3 Lambda client / floor",
            f"{consumer['boto3_client_ratio']} ({consumer['consumer_with_boto3_client_ms']} ms)",
            "-",
        ),
        (
            "memory hit p50, bare handler at INFO, proof verified earlier",
            f"{hot['memory_hit_us_p50']} µs",
            f"<= {MEMORY_HIT_TARGET_US} µs",
        ),
        ("memory hit p99", f"{hot['memory_hit_us_p99']} µs", "<= 250 µs"),
        ("first request with a new proof p50 (1 STS call, memory hit)", f"{hot['first_proof_us_p50']} µs", "-"),
        ("DynamoDB hit p50, sealed (KMS)", f"{hot['table_hit_kms_us_p50']} µs", "-"),
        ("DynamoDB hit p50, plaintext", f"{hot['table_hit_plain_us_p50']} µs", "-"),
        ("unsealing a cached token (AES-GCM, data key cached)", f"{hot['unseal_us_p50']} µs", "-"),
        ("renewal p50 (local server)", f"{hot['renewal_us_p50']} µs", "-"),
        ("AWS calls, memory hit", json.dumps(hot["memory_hit_calls"]), "none"),
        ("AWS calls, first DynamoDB hit", json.dumps(hot["first_table_hit_calls"]), "1 read, 1 KMS"),
        ("AWS calls, later DynamoDB hit", json.dumps(hot["table_hit_calls"]), "1 read, no KMS"),
        ("AWS calls, renewal", json.dumps(hot["renewal_calls"]), "<= 3 writes, 1 token request"),
    ]
    for name, size in results["artifacts"].items():
        limit = FUNCTION_CODE_LIMIT if name.endswith("Function") else LAYER_LIMIT
        rows.append((f"artifact {name} (unzipped)", f"{size / 1024:.1f} KiB", f"<= {limit / 1024:.0f} KiB"))
    return rows
