"""Envelope encryption of cached tokens with KMS (TOKEN_KMS_KEY_ID)."""

from __future__ import annotations

from typing import Any

from devstack.local.authserver import LocalAuthorizationServer
from devstack.local.aws import LocalAws
from tests.conftest import Broker, Profiles


def scan(local_aws: LocalAws, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = local_aws.client("dynamodb").scan(TableName=table)["Items"]
    return items


def test_a_full_scan_of_the_table_finds_no_token(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    broker.with_own_table()
    for scopes in (["customScope"], ["orders.read"], []):
        broker.invoke({"profile": profiles.create(), "scopes": scopes})

    items = scan(local_aws, broker.table_name)

    assert len(items) == 3
    dump = repr(items).encode()
    raw = b"".join(value.get("B", b"") for item in items for value in item.values())
    for token in auth_server.issued:
        assert token.encode() not in dump
        assert token.encode() not in raw
    assert all("access_token" not in item and "sealed_token" in item for item in items)


def test_a_fresh_container_decrypts_and_serves_the_cached_token_with_one_kms_call(
    broker: Broker, profiles: Profiles, local_aws: LocalAws
) -> None:
    profile = profiles.create()
    token = broker.invoke({"profile": profile}).answer["access_token"]
    broker.new_container()
    decrypts = local_aws.calls("TrentService.Decrypt")

    hits = [broker.invoke({"profile": profile, "min_ttl": 100 + i}) for i in range(3)]
    broker.app.SERVICE._memory.clear()
    hits.append(broker.invoke({"profile": profile}))

    assert [hit.answer["access_token"] for hit in hits] == [token] * 4
    assert "TableHit" in hits[0].metrics
    assert "TableHit" in hits[3].metrics
    assert local_aws.calls("TrentService.Decrypt") - decrypts == 1


def test_a_sealed_token_copied_under_another_key_is_a_miss_not_a_wrong_answer(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    # Given two keys cached, and the sealed token of one copied onto the other's item
    broker.with_own_table()
    first, second = profiles.create(), profiles.create()
    first_token = broker.invoke({"profile": first}).answer["access_token"]
    second_token = broker.invoke({"profile": second}).answer["access_token"]
    items = {item["sealed_token"]["B"]: item for item in scan(local_aws, broker.table_name)}
    source, target = list(items.values())
    local_aws.client("dynamodb").update_item(
        TableName=broker.table_name,
        Key={"cache_key": target["cache_key"]},
        UpdateExpression="SET sealed_token = :s, data_key = :d",
        ExpressionAttributeValues={":s": source["sealed_token"], ":d": source["data_key"]},
    )

    # When fresh containers ask for both
    answers = []
    for profile in (first, second):
        broker.new_container()
        answers.append(broker.invoke({"profile": profile}))

    # Then the tampered one is a miss that fetches a new token: no error, never the other's token
    tokens = [answer.answer["access_token"] for answer in answers]
    assert tokens.count(first_token) + tokens.count(second_token) == 1
    assert len(set(tokens) | {first_token, second_token}) == 3
    assert any("UnreadableCacheItem" in answer.metrics for answer in answers)
    assert len(auth_server.token_requests()) == 3


def test_without_a_kms_key_the_cache_works_in_plaintext(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    broker.new_container(TOKEN_KMS_KEY_ID="")
    profile = profiles.create()
    token = broker.invoke({"profile": profile}).answer["access_token"]
    broker.new_container(TOKEN_KMS_KEY_ID="")

    hit = broker.invoke({"profile": profile})

    assert hit.answer["access_token"] == token
    assert "TableHit" in hit.metrics
    assert "sealed_token" not in broker.item(profiles, profile)


def test_turning_sealing_on_renews_plaintext_tokens_instead_of_waiting_for_them(
    broker: Broker, profiles: Profiles, local_aws: LocalAws, auth_server: LocalAuthorizationServer
) -> None:
    # Given a token cached in plaintext before TOKEN_KMS_KEY_ID was set
    broker.new_container(TOKEN_KMS_KEY_ID="")
    profile = profiles.create()
    plaintext = broker.invoke({"profile": profile}).answer["access_token"]

    # When a container with sealing on asks
    broker.new_container()
    answer = broker.invoke({"profile": profile}, timeout_seconds=5)

    # Then it renews at once (with no lease to wait out), and the table no longer holds the
    # token in plaintext
    assert answer.answer["access_token"] != plaintext
    assert "CacheMiss" in answer.metrics
    item = broker.item(profiles, profile)
    assert "access_token" not in item
    assert "sealed_token" in item
