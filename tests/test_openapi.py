"""The HTTP route's OpenAPI 3.1 description (docs/openapi.yaml): a valid document whose bodies are
the contract's JSON Schemas themselves, and which answers for every status the broker gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from broker import errors
from devstack.template import ROOT

DOCUMENT, BASE_URI = read_from_filename(str(ROOT / "docs/openapi.yaml"))
OPERATION: dict[str, Any] = DOCUMENT["paths"]["/token"]["post"]
RESPONSES: dict[str, Any] = OPERATION["responses"]


def resolved(response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        name = response["$ref"].removeprefix("#/components/responses/")
        return dict(DOCUMENT["components"]["responses"][name])
    return response


def schema_refs(response: dict[str, Any]) -> set[str]:
    schema = resolved(response)["content"]["application/json"]["schema"]
    return {choice["$ref"] for choice in schema.get("oneOf", [schema])}


def test_it_is_a_valid_openapi_3_1_document() -> None:
    validate(DOCUMENT, base_uri=BASE_URI)  # raises, naming what is wrong
    assert DOCUMENT["openapi"].startswith("3.1")


def references(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_every_reference_resolves_to_this_document_or_a_schema_beside_it() -> None:
    found = set(references(DOCUMENT))
    assert found
    for reference in found:
        if reference.startswith("#/"):
            target: Any = DOCUMENT
            for part in reference.removeprefix("#/").split("/"):
                target = target[part]  # a KeyError names the broken reference
        else:
            schema = json.loads((ROOT / "docs" / reference).read_text())
            assert schema["$id"] == reference.removeprefix("schemas/")


def test_the_bodies_are_the_contracts_json_schemas_not_copies() -> None:
    assert OPERATION["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "schemas/token-request.schema.json"
    }
    assert schema_refs(RESPONSES["200"]) == {"schemas/token-answer.schema.json"}


def broker_statuses() -> set[int]:
    """Every status the broker's errors answer with on the HTTP door."""
    kinds = [kind for kind in vars(errors).values() if isinstance(kind, type) and issubclass(kind, errors.BrokerError)]
    return {kind.status for kind in kinds if kind is not errors.BrokerError}


@pytest.mark.parametrize("status", sorted(broker_statuses() - {405}))
def test_every_status_the_broker_answers_is_described_with_the_error_schema(status: int) -> None:
    # 405 never reaches the broker: API Gateway routes only POST /token to it
    assert "schemas/error-answer.schema.json" in schema_refs(RESPONSES[str(status)])


def test_a_503_says_when_to_ask_again() -> None:
    headers = resolved(RESPONSES["503"])["headers"]
    assert headers["Retry-After"] == {"$ref": "#/components/headers/RetryAfter"}
    assert DOCUMENT["components"]["headers"]["RetryAfter"]["required"] is True


def test_the_version_is_the_contracts() -> None:
    contract = (ROOT / "docs/CONTRACT.md").read_text().splitlines()[0]
    assert contract.endswith(f"(version {DOCUMENT['info']['version']})")
    assert yaml.safe_load((ROOT / "docs/openapi.yaml").read_text())["security"] == [{"sigv4": []}]
