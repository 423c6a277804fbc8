"""Reads `template.yaml`, CloudFormation's short tags included, so that nothing redefines it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]
    pass


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    # a SafeLoader subclass that only adds CloudFormation's tags
    document: dict[str, Any] = yaml.load(path.read_text(), Loader=_CloudFormationLoader)  # noqa: S506  # nosec B506
    return document


def table_definition(logical_id: str = "TokenTable", path: Path = TEMPLATE) -> dict[str, Any]:
    """The `CreateTable` arguments that the template's table resource stands for."""
    properties = load_template(path)["Resources"][logical_id]["Properties"]
    return {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties["BillingMode"],
    }


def ttl_attribute(logical_id: str = "TokenTable", path: Path = TEMPLATE) -> str:
    name: str = load_template(path)["Resources"][logical_id]["Properties"]["TimeToLiveSpecification"]["AttributeName"]
    return name
