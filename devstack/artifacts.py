"""Sizes of what `sam build` produced, unzipped: the function's own code and each layer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from devstack.template import ROOT

BUILD = ROOT / ".aws-sam" / "build"
# Targets from the performance issue: function code and layers, unzipped.
FUNCTION_CODE_LIMIT = 200 * 1024
LAYER_LIMIT = 15 * 1024 * 1024


def size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


def artifact_sizes() -> dict[str, int]:
    """What sam build made, and the layers it ships as they are (their `python/` folder)."""
    sizes = {folder.name: size(folder) for folder in sorted(BUILD.iterdir()) if folder.is_dir()}
    for layer in sorted((ROOT / "layers").glob("*/python")):
        sizes[f"layers/{layer.parent.name}"] = size(layer)
    return sizes


def main() -> None:
    if not BUILD.is_dir():
        sys.exit("no .aws-sam/build: run `make build` first")
    sizes = artifact_sizes()
    for name, bytes_ in sizes.items():
        limit = FUNCTION_CODE_LIMIT if name.endswith("Function") else LAYER_LIMIT
        print(f"  {name:<28} {bytes_ / 1024:>9.1f} KiB unzipped  (target <= {limit / 1024:.0f} KiB)")
    print(json.dumps(sizes))


if __name__ == "__main__":
    main()
